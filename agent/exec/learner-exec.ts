import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Writable } from 'node:stream';
import type { RunOptions } from './run-process.js';

/**
 * learner-exec (image/learner-exec/learner-exec.c) is the one program an exec starts before its command: a static
 * binary that, as root with an empty environment, joins the exec's cgroup, waits for the command on fd 3, becomes the
 * learner (no groups, no-new-privileges), enters the folder, looks the command up in its PATH and execs it with its
 * variables. It replaces a root shell, setpriv and the learner's shell: three program starts, each paying the dynamic
 * loader, became one that pays none.
 */
export interface LearnerExecIds {
  uid: number;
  gid: number;
  /** The cgroup.procs files it joins, as root, before it reads its command. */
  procs?: readonly string[];
}

/** `path` when it is there to run, else undefined (a checkout without its build: execs then use setpriv). */
export function findLearnerExec(path: string): string | undefined {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/** Starts learner-exec waiting for its command, in a process group of its own (so a timeout can kill its tree). */
export function startLearnerExec(path: string, { uid, gid, procs = [] }: LearnerExecIds): ChildProcess {
  const child = spawn(path, [String(uid), String(gid), ...procs], {
    cwd: '/',
    env: {},
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  // A process that could not start, or died waiting, is found out by its exit; its streams may fail meanwhile.
  child.on('error', () => {});
  for (const stream of [child.stdin, commandInput(child)]) stream?.on('error', () => {});
  return child;
}

/** Sends a waiting learner-exec its command; from then on it is the command. */
export function sendCommand(child: ChildProcess, options: Pick<RunOptions, 'cwd' | 'env' | 'command' | 'stdin'>): void {
  commandInput(child)?.end(commandMessage(options));
}

/**
 * What learner-exec reads on fd 3: NUL-terminated strings, the folder, "1" when stdin is written ("0": /dev/null),
 * the number of variables, the variables as NAME=value, then argv. No string may hold a NUL (the request schemas
 * refuse them): one would shift every field after it.
 */
export function commandMessage({ cwd, env, command, stdin }: Pick<RunOptions, 'cwd' | 'env' | 'command' | 'stdin'>): Buffer {
  const variables = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  const strings = [cwd, stdin === undefined ? '0' : '1', String(variables.length), ...variables, ...command];
  if (strings.some((text) => text.includes('\0'))) throw new Error('a command, folder or variable holds a NUL byte');
  return Buffer.from(`${strings.join('\0')}\0`);
}

function commandInput(child: ChildProcess): Writable | undefined {
  return (child.stdio[3] ?? undefined) as Writable | undefined;
}
