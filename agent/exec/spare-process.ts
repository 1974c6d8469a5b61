import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { AgentConfig } from '../config.js';
import { learnerEnv } from '../learner-env.js';
import { ExecCgroup } from '../limits/exec-cgroup.js';
import { becomeLearner, joinCommands, quote } from '../limits/learner-cgroup.js';
import { signal } from './process-tree.js';
import type { RunOptions } from './run-process.js';

/** A root shell waiting for one exec's command, already in that exec's cgroup (when the session has them). */
export interface Spare {
  child: ChildProcess;
  group?: ExecCgroup;
}

// The spare's script, as root with an empty environment, after joining its cgroup: waits for one line on fd 3 (the
// command, as shell words: see commandLine), closes fd 3 so the command never sees it, and execs setpriv with it.
// "$nl" is how a newline inside a word crosses the one line.
const WAIT_AND_RUN = `nl='
'
IFS= read -r command <&3 || exit 0
exec 3<&-
eval "$command"
exec "$@"`;

// Spares kept waiting. A spare is ready only once it joined its cgroup, and on cgroup v1 each of its two joins waits for
// an RCU grace period (strace: 3–15 ms on a busy 2-core host), longer than an exec of `true`: with one spare, started
// during the exec before, the next exec often waited for its joins. With two, each spare has two execs to get ready.
const SPARE_COUNT = 2;

/**
 * Keeps exec processes started ahead of the requests that will use them. Starting a process is the costliest step of
 * an exec: Node forks the whole agent, which blocks its event loop for milliseconds, then a shell joins the exec's
 * fresh cgroup. So root shells are started in advance, each in a cgroup of its own made before it, and wait for their
 * command; `launch` sends one its command and starts the next spare while the command runs, on the other core: the
 * agent only waits then. (Started after the answer instead, the fork delayed the next request of a client that sends
 * them back to back, and such a spare had less time to join its cgroup.) A spare stays root's until it execs setpriv
 * with its command, so no learner process can reach it while it waits.
 */
export class SpareProcesses {
  /** Oldest first: the oldest had the most time to join its cgroup. */
  #spares: Spare[] = [];
  /** The cgroup of the next spare, made ahead too (undefined inside: the session has no learner cgroups). */
  #nextGroup: { group?: ExecCgroup } | undefined;
  #makingGroup: Promise<void> | undefined;
  #closed = false;
  /**
   * Every exec's environment starts as the learner's clean one (learner-env.ts): a spare gets it with its arguments,
   * so that the line it reads, one byte per read() as a shell must, carries only what an exec adds or changes.
   */
  readonly #baseEnv: Record<string, string>;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: FastifyBaseLogger,
  ) {
    this.#baseEnv = learnerEnv(config);
  }

  /**
   * A waiting spare, else one started now in the cgroup made ahead; the caller must listen for its exit before the
   * next turn of the event loop, which may bring it. Undefined while no cgroup is ready (right after the start, a burst):
   * the caller then starts its command itself, and a spare is made for the next exec.
   */
  take(): Spare | undefined {
    const waiting = this.#claim();
    if (waiting) return waiting;
    this.#refill();
    return this.#claim();
  }

  /**
   * Starts the spares before the first exec asks: that exec would otherwise make its cgroup and join it on its own
   * time, which on a busy host with many sessions (each first exec of the density bench) costs tens of milliseconds.
   */
  prepare(): void {
    this.#refill();
  }

  /** Sends a taken spare its command, then starts the next spare: from here on this one is the exec's process. */
  launch(spare: Spare, options: RunOptions): ChildProcess {
    commandInput(spare.child)?.end(commandLine(options, this.#baseEnv));
    this.#refill();
    return spare.child;
  }

  #claim(): Spare | undefined {
    for (let spare = this.#spares.shift(); spare; spare = this.#spares.shift()) {
      if (isWaiting(spare.child)) return spare;
      // Died waiting (a pids limit kept it out of its cgroup, say).
      void spare.group?.release();
    }
    return undefined;
  }

  /** Kills the waiting spares and starts no more: the agent shuts down. */
  close(): void {
    this.#closed = true;
    this.#spares.splice(0).forEach(kill);
    void this.#nextGroup?.group?.release();
    this.#nextGroup = undefined;
  }

  /** Starts a spare in the cgroup made ahead, then makes the next cgroup; first waits for that cgroup if needed. */
  #refill(): void {
    if (this.#closed || this.#spares.length >= SPARE_COUNT) return;
    const next = this.#nextGroup;
    if (!next) {
      void this.#makeGroup().then(() => this.#refill());
      return;
    }
    this.#nextGroup = undefined;
    try {
      this.#spares.push(this.#spawn(next.group));
    } catch (error) {
      // Execs start their own process then, which fails the same way where it must (no setpriv, say).
      this.log.warn({ err: error }, 'cannot start a spare exec process');
      void next.group?.release();
      return;
    }
    // Tops up to SPARE_COUNT after the first exec or a burst; otherwise each launch starts the one it took.
    void this.#makeGroup().then(() => this.#refill());
  }

  #makeGroup(): Promise<void> {
    this.#makingGroup ??= this.#createGroup()
      .then((group) => {
        if (this.#closed) void group?.release();
        else this.#nextGroup = { group };
      })
      .finally(() => (this.#makingGroup = undefined));
    return this.#makingGroup;
  }

  async #createGroup(): Promise<ExecCgroup | undefined> {
    const driver = this.config.learner.cgroups?.driver;
    if (!driver) return undefined;
    try {
      return await ExecCgroup.create(driver);
    } catch (error) {
      // The command still runs, in the helpers' group; only a timeout's reach is smaller.
      this.log.warn({ err: error }, 'cannot make a cgroup for an exec');
      return undefined;
    }
  }

  #spawn(group: ExecCgroup | undefined): Spare {
    const { learner } = this.config;
    const script = `${joinCommands(group?.procs ?? learner.cgroupProcs)}\n${WAIT_AND_RUN}`;
    const base = Object.entries(this.#baseEnv).map(([name, value]) => `${name}=${value}`);
    const child = spawn('/bin/sh', ['-c', script, 'spare', ...becomeLearner({ uid: learner.uid, gid: learner.gid, noNewPrivs: true }), ...base], {
      cwd: '/',
      env: {},
      detached: true, // its own process group, so a timeout can kill everything the command started
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    // A spare that could not start, or died waiting, is found out when taken; its streams may fail meanwhile.
    child.on('error', () => {});
    for (const stream of [child.stdin, commandInput(child)]) stream?.on('error', () => {});
    return { child, group };
  }
}

/**
 * The line a spare evaluates: its folder, /dev/null as stdin when no stdin is given, and, for the learner's shell of
 * learner-cgroup.ts, the variables of `env` that differ from `baseEnv` (which the spare exports first; `env` has all of
 * its names, as learnerEnv makes every exec's) and the argv, every value quoted as one shell word.
 */
export function commandLine({ cwd, env, command, stdin }: Pick<RunOptions, 'cwd' | 'env' | 'command' | 'stdin'>, baseEnv: Record<string, string> = {}): string {
  const changed = Object.entries(env).filter(([name, value]) => baseEnv[name] !== value);
  const words = [...changed.map(([name, value]) => `${name}=${value}`), '--', ...command].map(lineWord).join(' ');
  const noStdin = stdin === undefined ? 'exec </dev/null; ' : '';
  return `cd -P -- ${lineWord(cwd)} || exit 126; ${noStdin}set -- "$@" ${words}\n`;
}

/** `text` quoted as one shell word that stays on one line: a newline in it becomes "$nl". */
function lineWord(text: string): string {
  return quote(text).replaceAll('\n', `'"$nl"'`);
}

function commandInput(child: ChildProcess): Writable | undefined {
  return (child.stdio[3] ?? undefined) as Writable | undefined;
}

function isWaiting(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function kill(spare: Spare): void {
  if (spare.child.pid !== undefined) signal(-spare.child.pid, 'SIGKILL');
  void spare.group?.release();
}
