import { lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveRefusal, extractTar } from '../../../../agent/archive/tar-jail.js';
import { buildBomb, buildTar, hostileArchives } from '../../../helpers/hostile-archives.js';

const LIMITS = { maxBytes: 8 * 1024 * 1024, maxEntries: 100 };

describe('tar jail', () => {
  let base: string;
  let dest: string;
  let outside: string;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'tar-jail-'));
    dest = join(base, 'dest');
    outside = join(base, 'outside');
    await mkdir(dest);
    await mkdir(outside);
    await writeFile(join(outside, 'secret.txt'), 'secret');
    await writeFile(join(dest, 'existing.txt'), 'existing');
  });
  afterEach(async () => rm(base, { recursive: true, force: true }));

  it('extracts files, folders, modes and links inside, from .tar and .tar.gz', async () => {
    for (const gzip of [false, true]) {
      const archive = await buildTar(
        [
          { name: 'app/', type: 'directory' },
          { name: 'app/run.sh', mode: 0o755, body: 'echo hi\n' },
          { name: './app/ünïcode.txt', body: 'é' },
          { name: 'app/link', type: 'symlink', linkname: 'run.sh' },
          { name: 'app/up', type: 'symlink', linkname: '../existing.txt' },
          { name: 'app/hard', type: 'link', linkname: 'app/run.sh' },
        ],
        gzip,
      );
      const summary = await extractTar(Readable.from([archive]), dest, LIMITS);
      expect(summary.entries).toBe(6);
      expect(await readFile(join(dest, 'app/run.sh'), 'utf8')).toBe('echo hi\n');
      expect((await lstat(join(dest, 'app/run.sh'))).mode & 0o777).toBe(0o755);
      expect(await readFile(join(dest, 'app/ünïcode.txt'), 'utf8')).toBe('é');
      expect((await lstat(join(dest, 'app/link'))).isSymbolicLink()).toBe(true);
      expect(await readFile(join(dest, 'app/hard'), 'utf8')).toBe('echo hi\n');
      await rm(join(dest, 'app'), { recursive: true });
    }
  });

  for (const [attack, entries] of Object.entries(hostileArchives('outside'))) {
    it(`refuses ${attack} and writes nothing outside`, async () => {
      const archive = await buildTar(entries, true);
      const error = await extractTar(Readable.from([archive]), dest, LIMITS).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ArchiveRefusal);
      expect(await readdir(outside)).toEqual(['secret.txt']);
      expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('secret');
      expect(await readFile(join(dest, 'existing.txt'), 'utf8')).toBe('existing');
      await expect(lstat('/tmp/through.txt')).rejects.toThrow();
    });
  }

  it('refuses more entries than the cap', async () => {
    const entries = Array.from({ length: LIMITS.maxEntries + 1 }, (_, i) => ({ name: `f${i}` }));
    const error = await extractTar(Readable.from([await buildTar(entries)]), dest, LIMITS).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'ARCHIVE_TOO_LARGE' });
  });

  it('stops a decompression bomb at the byte cap', async () => {
    const error = await extractTar(buildBomb(LIMITS.maxBytes * 4), dest, LIMITS).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'ARCHIVE_TOO_LARGE' });
  });

  it('refuses bytes that are no archive', async () => {
    const error = await extractTar(Readable.from([Buffer.from('hello, this is not a tar file at all'.repeat(40))]), dest, LIMITS).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'ARCHIVE_INVALID' });
  });
});
