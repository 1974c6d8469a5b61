import type { ChildProcess } from 'node:child_process';
import type { FastifyBaseLogger } from 'fastify';
import type { AgentConfig } from '../config.js';
import { ExecCgroup } from '../limits/exec-cgroup.js';
import { findLearnerExec, sendCommand, startLearnerExec } from './learner-exec.js';
import { signal } from './process-tree.js';
import type { RunOptions } from './run-process.js';

/** A learner-exec waiting for one exec's command as root, already in that exec's cgroup (when the session has them). */
export interface Spare {
  child: ChildProcess;
  group?: ExecCgroup;
}

// Spares kept waiting. A spare is ready only once it joined its cgroup, and on cgroup v1 each of its two joins waits for
// an RCU grace period (strace: 3–15 ms on a busy 2-core host), longer than an exec of `true`: with one spare, started
// during the exec before, the next exec often waited for its joins. With two, each spare has two execs to get ready.
const SPARE_COUNT = 2;

/**
 * Keeps exec processes started ahead of the requests that will use them. Starting a process is the costliest step of
 * an exec: Node forks the whole agent, which blocks its event loop for a millisecond or more (and the agent then
 * faults in its own pages again), then the process joins the exec's fresh cgroup. So learner-execs (learner-exec.ts)
 * are started in advance, each in a cgroup of its own made before it, and wait for their command as root. `launch`
 * sends one its command; the next spare is started once that exec's answer went out (`afterExec`), unless the exec
 * took the last one, which must be replaced at once. Started while the command ran, the fork delayed the answer:
 * direct to the agent, `true` 20 ms apart, 5.7–6.3 ms against 4.0–4.4 ms p50 (docs/benchmarks.md). With two spares,
 * the one started after an exec serves the exec after next, so it has a whole exec's time to join its cgroup. A spare
 * stays root's until it has its command, so no learner process can reach it while it waits. Without learner-exec
 * (a checkout that did not build it) there are no spares: each exec starts setpriv itself (run-process.ts).
 */
export class SpareProcesses {
  /** Oldest first: the oldest had the most time to join its cgroup. */
  #spares: Spare[] = [];
  /** The cgroup of the next spare, made ahead too (undefined inside: the session has no learner cgroups). */
  #nextGroup: { group?: ExecCgroup } | undefined;
  #makingGroup: Promise<void> | undefined;
  #closed = false;
  /** learner-exec's path, undefined where it is missing. */
  readonly #program: string | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: FastifyBaseLogger,
  ) {
    this.#program = findLearnerExec(config.learnerExec);
    if (!this.#program) log.warn({ path: config.learnerExec }, 'no learner-exec: every exec starts setpriv and two shells, slower');
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

  /**
   * A learner-exec started now in `group` (made by the caller), for an exec that found no spare; undefined without
   * learner-exec. Hand it its command with `launch` at once.
   */
  startNow(group: ExecCgroup | undefined): Spare | undefined {
    return this.#program ? this.#spawn(group) : undefined;
  }

  /** Sends a taken spare its command: from here on it is the exec's process. Replaces it at once if it was the last. */
  launch(spare: Spare, options: RunOptions): ChildProcess {
    sendCommand(spare.child, options);
    if (this.#spares.length === 0) this.#refill();
    return spare.child;
  }

  /** Called when an exec ended: the next spare is started after the answer went out (this turn's writes). */
  afterExec(): void {
    setImmediate(() => this.#refill());
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
    if (this.#closed || !this.#program || this.#spares.length >= SPARE_COUNT) return;
    const next = this.#nextGroup;
    if (!next) {
      void this.#makeGroup().then(() => this.#refill());
      return;
    }
    this.#nextGroup = undefined;
    try {
      this.#spares.push(this.#spawn(next.group));
    } catch (error) {
      // Execs start their own process then, which fails the same way where it must.
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
    const { uid, gid, cgroupProcs } = this.config.learner;
    return { child: startLearnerExec(this.#program!, { uid, gid, procs: group?.procs ?? cgroupProcs }), group };
  }
}

function isWaiting(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function kill(spare: Spare): void {
  if (spare.child.pid !== undefined) signal(-spare.child.pid, 'SIGKILL');
  void spare.group?.release();
}
