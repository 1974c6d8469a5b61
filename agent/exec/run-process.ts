import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import type { ExecResult } from '../../shared/schemas/exec.js';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import { killProcessTree } from './process-tree.js';

export type OutputStream = 'stdout' | 'stderr';

export interface RunOptions {
  /** argv; `command[0]` is looked up in `env.PATH`. */
  command: string[];
  cwd: string;
  /** The whole environment of the process. */
  env: Record<string, string>;
  /** The cgroup.procs files of the exec's cgroup, joined before the command runs (agent/limits/learner-cgroup.ts). */
  cgroupProcs?: readonly string[];
  uid: number;
  gid: number;
  stdin?: string;
  timeoutMs: number;
  /** Bytes of stdout and stderr kept together; the rest is read and dropped. */
  outputLimitBytes: number;
  /** How long to keep reading after the process exited while something it started still holds its output. */
  exitGraceMs?: number;
  /** Aborting kills the process tree (the client went away). */
  signal?: AbortSignal;
  /**
   * Kills everything the command started, on a timeout or abort; by default its process group and the descendants
   * found by walking the process tree (process-tree.ts).
   */
  killAll?: (pid: number) => Promise<void>;
  /** Called with each decoded chunk as it arrives, in order. */
  onOutput?: (stream: OutputStream, data: string) => void;
}

/** Exit status after a timeout, as coreutils' `timeout` reports it. */
export const TIMEOUT_EXIT_CODE = 124;
const NOT_EXECUTABLE_EXIT_CODE = 126;
const NOT_FOUND_EXIT_CODE = 127;
const DEFAULT_EXIT_GRACE_MS = 150;
/** Collects the output of one stream: decoded text, and complete lines into the shared log. */
class StreamCollector {
  text = '';
  private readonly decoder = new StringDecoder('utf8');
  private partialLine = '';

  constructor(
    private readonly name: OutputStream,
    private readonly logs: string[],
    private readonly onOutput?: (stream: OutputStream, data: string) => void,
  ) {}

  write(bytes: Buffer): void {
    this.add(this.decoder.write(bytes));
  }

  end(): void {
    this.add(this.decoder.end());
    if (this.partialLine) this.logs.push(this.partialLine);
    this.partialLine = '';
  }

  private add(data: string): void {
    if (!data) return;
    this.text += data;
    this.onOutput?.(this.name, data);
    const lines = (this.partialLine + data).split('\n');
    this.partialLine = lines.pop()!;
    for (const line of lines) this.logs.push(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
}

/** Length of the longest prefix of `bytes` of at most `max` bytes that does not cut a UTF-8 character. */
function utf8Prefix(bytes: Buffer, max: number): number {
  let end = Math.min(max, bytes.length);
  // Back off over continuation bytes (10xxxxxx) so the cut falls before a character's first byte.
  if (end < bytes.length) while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return end;
}

/**
 * Runs a command as the learner, with no-new-privileges, in its own process group and collects its output; `start`
 * starts it (spare-process.ts hands it to a process made in advance). Resolves once the process
 * exited and its output was read (or `exitGraceMs` after the exit when a background child still holds the
 * output open: that child is left running). Never rejects: a program that cannot start gives 127 or 126.
 */
export function runProcess(options: RunOptions, start: (options: RunOptions) => ChildProcess = spawnAsLearner): Promise<ExecResult> {
  const started = performance.now();
  const logs: string[] = [];
  const out = { stdout: new StreamCollector('stdout', logs, options.onOutput), stderr: new StreamCollector('stderr', logs, options.onOutput) };
  let keptBytes = 0;
  let truncated = false;
  let timedOut = false;
  let finished = false;

  return new Promise<ExecResult>((resolve) => {
    const child = start(options);

    let exitCode: number | null = null;
    let openStreams = 2;
    let graceTimer: NodeJS.Timeout | undefined;

    const finish = (code: number): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      out.stdout.end();
      out.stderr.end();
      const elapsed_seconds = Math.round(performance.now() - started) / 1000;
      resolve({ exit_code: code, logs, stdout: out.stdout.text, stderr: out.stderr.text, elapsed_seconds, timed_out: timedOut, truncated });
    };
    const finishIfDone = (): void => {
      if (exitCode !== null && openStreams === 0) finish(exitCode);
    };
    const kill = (): void => {
      if (!finished && child.pid !== undefined && child.exitCode === null && child.signalCode === null) void (options.killAll ?? killProcessTree)(child.pid);
    };
    const onAbort = (): void => kill();

    const timer = setTimeout(() => {
      if (child.exitCode !== null || child.signalCode !== null) return; // already exited, only the grace is left
      timedOut = true;
      kill();
    }, options.timeoutMs);
    if (options.signal?.aborted) queueMicrotask(kill);
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    for (const name of ['stdout', 'stderr'] as const) {
      const stream = child[name]!;
      stream.on('data', (chunk: Buffer) => {
        // Past the limit (or after answering) the output is still read, so the process never blocks on a full pipe.
        if (finished || truncated) return;
        const room = options.outputLimitBytes - keptBytes;
        const kept = chunk.length <= room ? chunk.length : utf8Prefix(chunk, room);
        if (kept < chunk.length) truncated = true;
        keptBytes += kept;
        if (kept > 0) out[name].write(kept === chunk.length ? chunk : chunk.subarray(0, kept));
      });
      stream.on('close', () => {
        openStreams--;
        finishIfDone();
      });
    }
    if (child.stdin) {
      child.stdin.on('error', () => {}); // EPIPE: the process exited without reading all of it
      child.stdin.end(options.stdin);
    }

    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill; the process is still ours to wait for
      // What a shell answers: 127 for a program that is not there, 126 for one that cannot be run.
      const notFound = error.code === 'ENOENT';
      const reason = notFound ? 'command not found' : error.code === 'EACCES' ? 'permission denied' : (error.code ?? error.message);
      out.stderr.write(Buffer.from(`${options.command[0]}: ${reason}\n`));
      finish(notFound ? NOT_FOUND_EXIT_CODE : NOT_EXECUTABLE_EXIT_CODE);
    });
    child.on('exit', (code, signal) => {
      exitCode = timedOut ? TIMEOUT_EXIT_CODE : (code ?? 128 + (signal ? constants.signals[signal] : 0));
      graceTimer = setTimeout(() => finish(exitCode!), options.exitGraceMs ?? DEFAULT_EXIT_GRACE_MS);
      finishIfDone();
    });
  });
}

/** Joins the exec's cgroup as root, then becomes the learner with no-new-privileges (learner-cgroup.ts). */
function spawnAsLearner(options: RunOptions): ChildProcess {
  const { file, args, env } = learnerSpawn({ uid: options.uid, gid: options.gid, join: options.cgroupProcs, noNewPrivs: true }, options.command, options.env);
  return spawn(file, args, {
    cwd: options.cwd,
    env,
    detached: true, // its own process group, so a timeout can kill everything it started
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
}
