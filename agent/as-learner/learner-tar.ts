import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import type { PackRequest } from './tar-worker.js';

const STDERR_KEPT_BYTES = 4096;
const PATH = '/usr/local/bin:/usr/bin:/bin';

/** Whose rights a worker runs with. */
export interface LearnerIds {
  uid: number;
  gid: number;
  /** The learner cgroup's cgroup.procs files: its work counts against the learner's pids and CPU. */
  cgroupProcs?: readonly string[];
}

/** Packing failed: the message is the worker's (a path it could not read, a folder that went away). */
export class PackError extends Error {
  override readonly name = 'PackError';
}

/**
 * Packs `request.dir` into a tar stream in a child process running as the learner, so a path the learner swaps
 * for a symbolic link can only reach what the learner may read itself. The stream ends only once the worker
 * exited cleanly; otherwise it fails with a PackError, so a half-written tar is never taken for a whole one.
 */
export function packAsLearner(learner: LearnerIds, request: Omit<PackRequest, 'op'>): Readable {
  const { file, args, env } = learnerSpawn(learner.cgroupProcs, [process.execPath, ...workerArgs()], { PATH, LANG: 'C.UTF-8' });
  const child = spawn(file, args, {
    cwd: '/',
    env,
    // Only a root agent may switch users (libuv then also drops the supplementary groups); else it runs as itself.
    ...(process.getuid?.() === learner.uid ? {} : { uid: learner.uid }),
    ...(process.getgid?.() === learner.gid ? {} : { gid: learner.gid }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const tar = new PassThrough();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT_BYTES)));
  child.stdout!.pipe(tar, { end: false });
  child.stdin!.on('error', () => {}); // EPIPE: the worker failed before reading its request
  child.stdin!.end(JSON.stringify({ op: 'pack', ...request } satisfies PackRequest));
  child.once('error', (error) => tar.destroy(new PackError(`cannot start the packer: ${error.message}`)));
  child.once('close', (code, signal) => {
    if (code === 0) tar.end();
    else tar.destroy(new PackError(stderr.trim() || `the packer ended with ${signal ?? `code ${code}`}`));
  });
  // The reader went away (a cancelled build): the worker has nothing left to do.
  tar.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return tar;
}

// The bundled agent ships the worker beside main.js; from source it runs through tsx.
function workerArgs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const bundled = join(here, 'tar-worker.js');
  if (existsSync(bundled)) return ['--max-semi-space-size=1', bundled];
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return ['--import', tsx, join(here, 'tar-worker.ts')];
}
