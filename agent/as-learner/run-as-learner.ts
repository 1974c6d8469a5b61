import { execFile } from 'node:child_process';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import type { LearnerIds } from './learner-tar.js';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TIMEOUT_MS = 60_000;
const OUTPUT_LIMIT_BYTES = 64 * 1024;

/**
 * Runs a fixed command (never learner input) with the learner's rights, in the learner cgroup: for work on paths
 * the learner can write, where the kernel then refuses whatever a swapped-in symbolic link points to. Rejects with
 * the command's stderr when it fails.
 */
export function runAsLearner(learner: LearnerIds, argv: readonly string[]): Promise<void> {
  const { file, args, env } = learnerSpawn(learner.cgroupProcs, argv, { PATH, LANG: 'C.UTF-8' });
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: '/',
        env,
        timeout: TIMEOUT_MS,
        maxBuffer: OUTPUT_LIMIT_BYTES,
        killSignal: 'SIGKILL',
        ...(process.getuid?.() === learner.uid ? {} : { uid: learner.uid }),
        ...(process.getgid?.() === learner.gid ? {} : { gid: learner.gid }),
      },
      (error, _stdout, stderr) => (error ? reject(new Error(`${argv.join(' ')}: ${String(stderr).trim() || error.message}`)) : resolve()),
    );
  });
}
