import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AppError } from '../../shared/errors.js';
import type { LearnerIds } from '../as-learner/learner-tar.js';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import { REFUSED_EXIT_CODE, type ArchiveRequest } from './archive-protocol.js';

const STDERR_KEPT_BYTES = 4096;
const PATH = '/usr/local/bin:/usr/bin:/bin';

/**
 * Extracts a .tar or .tar.gz stream into `dir` in a worker running as the learner (its own, beside the packer of
 * agent/as-learner/, because its stdin carries the archive); a refused archive is an AppError with the worker's code.
 */
export function extractAsLearner(
  learner: LearnerIds,
  dir: string,
  input: Readable,
  limits: { maxBytes: number; maxEntries: number },
): Promise<{ entries: number; bytes: number }> {
  const { child, stderr } = startWorker(learner, { op: 'extract', dir, ...limits });
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stdin!.on('error', () => {}); // EPIPE: the worker refused before reading everything
  input.pipe(child.stdin!);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      // The rest of a refused upload is not read: the client gets its answer at once.
      input.unpipe(child.stdin!);
      input.resume();
      if (code === 0) return resolve(JSON.parse(stdout) as { entries: number; bytes: number });
      if (code === REFUSED_EXIT_CODE) {
        const refusal = JSON.parse(stderr().trim().split('\n').pop() ?? '{}') as { code?: 'ARCHIVE_REFUSED'; message?: string };
        return reject(new AppError(refusal.code ?? 'ARCHIVE_REFUSED', refusal.message ?? 'archive refused'));
      }
      const message = stderr().trim();
      if (/EACCES|EPERM/.test(message)) return reject(new AppError('PERMISSION_DENIED', 'the learner may not write there'));
      if (/ENOSPC|EDQUOT/.test(message)) return reject(new AppError('NO_SPACE', 'no space left in the workspace'));
      reject(new Error(message || `the archive worker ended with ${signal ?? `code ${code}`}`));
    });
  });
}

function startWorker(learner: LearnerIds, request: ArchiveRequest): { child: ChildProcess; stderr: () => string } {
  const { file, args, env } = learnerSpawn(learner.cgroupProcs, [process.execPath, ...workerArgs(), JSON.stringify(request)], {
    PATH,
    LANG: 'C.UTF-8',
  });
  const child = spawn(file, args, {
    cwd: '/',
    env,
    // Only a root agent may switch users (libuv then also drops the supplementary groups); else it runs as itself.
    ...(process.getuid?.() === learner.uid ? {} : { uid: learner.uid }),
    ...(process.getgid?.() === learner.gid ? {} : { gid: learner.gid }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT_BYTES)));
  return { child, stderr: () => stderr };
}

// The bundled agent ships the worker beside main.js; from source it runs through tsx.
function workerArgs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const bundled = join(here, 'archive-worker.js');
  if (existsSync(bundled)) return [bundled];
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return ['--import', tsx, join(here, 'archive-worker.ts')];
}
