import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PackError, packAsLearner } from '../../../../agent/as-learner/learner-tar.js';
import { runAsLearner } from '../../../../agent/as-learner/run-as-learner.js';

const run = promisify(execFile);
const LEARNER = { uid: 1000, gid: 1000 };

/** The names in a tar stream, as GNU tar lists them. */
async function namesIn(tar: NodeJS.ReadableStream, scratch: string): Promise<string[]> {
  const file = join(scratch, 'out.tar');
  const chunks: Buffer[] = [];
  await pipeline(tar, new Writable({ write: (chunk: Buffer, _, done) => (chunks.push(chunk), done()) }));
  await writeFile(file, Buffer.concat(chunks));
  return (await run('tar', ['-tf', file])).stdout.trim().split('\n').sort();
}

describe('work done as the learner', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'as-learner-')));
    await chmod(root, 0o755);
    dir = join(root, 'context');
    await mkdir(dir);
    await chown(dir, LEARNER.uid, LEARNER.gid);
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('packs what the learner may read, with .dockerignore applied and links kept as links', async () => {
    await writeFile(join(dir, 'app.js'), 'ok');
    await writeFile(join(dir, 'debug.log'), 'left out');
    await symlink('/run', join(dir, 'run-link'));
    const tar = packAsLearner(LEARNER, { dir, dockerignore: '*.log\n', keep: ['.dockerignore'] });
    expect(await namesIn(tar, root)).toEqual(['.', 'app.js', 'run-link']);
  });

  it('fails the stream with the reason when a file is only root’s, instead of packing it', async () => {
    await writeFile(join(dir, 'secret'), 'root only', { mode: 0o600 });
    const tar = packAsLearner(LEARNER, { dir });
    await expect(namesIn(tar, root)).rejects.toThrow(PackError);
    await expect(namesIn(packAsLearner(LEARNER, { dir }), root)).rejects.toThrow(/EACCES|permission denied/);
  });

  it('runs a command with the learner’s rights: what only root may delete stays', async () => {
    const victim = join(root, 'victim');
    await mkdir(victim);
    await writeFile(join(victim, 'file'), 'keep');
    await symlink(victim, join(dir, 'planted'));
    await mkdir(join(dir, 'own'));
    await chown(join(dir, 'own'), LEARNER.uid, LEARNER.gid);
    await expect(runAsLearner(LEARNER, ['rm', '-rf', '--', join(dir, 'planted/file')])).rejects.toThrow(/Permission denied/);
    await runAsLearner(LEARNER, ['find', dir, '-mindepth', '1', '-delete']);
    expect((await run('ls', ['-A', dir])).stdout).toBe('');
    expect((await run('cat', [join(victim, 'file')])).stdout).toBe('keep');
  });
});
