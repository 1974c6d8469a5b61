import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { ControllerConfig } from '../config.js';
import type { ControllerMetrics, PoolCounts } from '../metrics.js';
import type { RuntimeSession, SessionRuntime } from '../runtime/session-runtime.js';
import type { ProbeAgent } from './agent-probe.js';
import { isolate } from './isolate.js';
import type { Reaper } from './reaper.js';
import type { SessionLauncher } from './session-launcher.js';
import type { SessionState } from './session-store.js';
import type { StateStore } from './state-store.js';

export interface WarmPoolDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  store: StateStore;
  probeAgent: ProbeAgent;
  metrics: ControllerMetrics;
  log: FastifyBaseLogger;
  /** Starts members the way sessions start cold, in the same MAX_CONCURRENT_STARTS slots. */
  launcher: SessionLauncher;
  reaper: Reaper;
  /** Sessions that exist now: the pool only grows while sessions and pool together stay within MAX_SESSIONS. */
  activeSessions: () => number;
  now: () => number;
  /** Only the leader among replicas keeps a pool. */
  isLeader: () => boolean;
}

/** A container the pool started ahead. `claiming` while a session takes it over, `removing` on its way out. */
export interface PoolMember {
  poolId: string;
  containerName: string;
  /** The member's current token: nobody but the controller ever holds it; a claim replaces it. */
  token: string;
  address: string | null;
  status: 'starting' | 'ready' | 'claiming' | 'removing';
  /** performance.now() when it became ready: reconcile only calls a member vanished if it was ready before it listed. */
  readySince: number;
}

/** What a claim turns a member into. */
export interface ClaimTarget {
  /** The session's state; with its pool_id it is the claim's commit point on disk. */
  state: SessionState & { pool_id: string };
  token: string;
}

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 60_000;

/**
 * The warm pool (WARM_POOL_SIZE): session containers started ahead, unassigned, so that POST /sessions can hand
 * one over in milliseconds instead of waiting seconds for an agent and an inner daemon. Members are labelled by a
 * pool id, never a session id; a claim gives a member a new token, writes the session's state (pool id included)
 * and renames its folder and container, all without restarting it. One member starts at a time, in the background.
 */
export class WarmPool {
  readonly #members = new Map<string, PoolMember>();
  #filling: Promise<void> | null = null;
  #retry: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;
  readonly #closing = new AbortController();

  constructor(private readonly deps: WarmPoolDeps) {}

  get enabled(): boolean {
    return this.deps.config.warmPoolSize > 0;
  }

  counts(): PoolCounts {
    let members = 0;
    let ready = 0;
    for (const member of this.#members.values()) {
      if (member.status === 'starting' || member.status === 'ready') members += 1;
      if (member.status === 'ready') ready += 1;
    }
    return { members, ready };
  }

  /** Whether the pool knows this pool id (in any state): reconcile must leave its container, volumes and folder. */
  has(poolId: string): boolean {
    return this.#members.has(poolId);
  }

  /** Takes the oldest ready member for a claim, or null (then a miss is counted): synchronous, so two creates never share one. */
  take(): PoolMember | null {
    if (!this.enabled || !this.deps.isLeader()) return null;
    for (const member of this.#members.values()) {
      if (member.status !== 'ready') continue;
      member.status = 'claiming';
      return member;
    }
    this.deps.metrics.poolMisses.inc();
    return null;
  }

  /**
   * Hands a taken member to a session: its state (the claim's commit point) and folder first, then at once the
   * container's name and the new token (the agent switches to it at the probe, and the old one stops working).
   * False if that failed; the member is then removed and the caller starts the session cold.
   */
  async claim(member: PoolMember, target: ClaimTarget): Promise<boolean> {
    const { store, runtime, metrics } = this.deps;
    const startedAt = performance.now();
    const sessionId = target.state.session_id;
    const log = this.deps.log.child({ sessionId, poolId: member.poolId });
    try {
      await store.claimPoolMember(target.state);
      const renamed = runtime.renameSession(member.containerName, target.state.container_name).then(() => {
        member.containerName = target.state.container_name;
      });
      const answered = this.#handOverToken(sessionId, target.token, member.address);
      // Both settle before anything else happens, so that the cleanup below never races one of them.
      for (const step of await Promise.allSettled([renamed, answered])) if (step.status === 'rejected') throw step.reason;
      this.#members.delete(member.poolId);
      metrics.poolClaims.inc();
      metrics.poolClaimSeconds.observe((performance.now() - startedAt) / 1000);
      log.info({ containerName: target.state.container_name }, 'claimed a warm session');
      return true;
    } catch (err) {
      log.warn({ err }, 'could not claim a warm session; removing it and starting one cold');
      metrics.poolFailures.inc();
      await this.#remove(member, sessionId);
      return false;
    }
  }

  // A probe with the new token makes the agent read its token file again: from then on the old token is refused.
  // Where a token cannot change at once (a Secret volume), the session keeps the member's, which nobody else holds.
  async #handOverToken(sessionId: string, token: string, address: string | null): Promise<void> {
    const { store, runtime, probeAgent } = this.deps;
    const owner = { kind: 'session', sessionId } as const;
    if (store.tokensTakeEffectAtOnce) await store.writeToken(owner, token);
    if (store.agentDir) await runtime.handOverAgentDir?.(store.agentDir(owner));
    const endpoint = store.agentEndpoint(owner, address);
    const health = endpoint ? await probeAgent(endpoint, token) : null;
    if (health?.status !== 'healthy' || !health.daemon.ready) throw new Error('the warm session did not answer with its new token');
  }

  /** Starts members in the background until the pool is full (one at a time; after a failure, with a backoff). */
  fill(): void {
    if (!this.enabled || this.#closed || this.#filling || this.#retry || !this.deps.isLeader()) return;
    this.#filling = this.#fill().finally(() => {
      this.#filling = null;
    });
  }

  /**
   * Brings the pool in line with Docker (the reconciler calls it with the containers it listed that no session claimed):
   * adopts members a previous controller started while there is room, removes the rest and those not running, and
   * forgets members whose container vanished. `claimed` says whether a session took a pool id since the listing.
   */
  async reconcile(containers: Map<string, RuntimeSession>, listedAt: number, claimed: (poolId: string) => boolean): Promise<void> {
    for (const [poolId, container] of containers) {
      const member = this.#members.get(poolId);
      if (member?.status === 'ready' && container.state === 'stopped') {
        // Docker gave up restarting it: a new member is cheaper than finding out why.
        this.deps.log.warn({ poolId }, 'warm session stopped; replacing it');
        await this.#remove(member);
      }
      if (member || claimed(poolId)) continue;
      await isolate(this.deps.log, { poolId }, 'reconcile a warm session', () => this.#adopt(container, poolId));
    }
    for (const member of [...this.#members.values()]) {
      if (member.status !== 'ready' || member.readySince > listedAt || containers.has(member.poolId)) continue;
      this.deps.log.warn({ poolId: member.poolId }, 'warm session container vanished; removing what is left of it');
      await this.#remove(member);
    }
    this.fill();
  }

  /** Stops starting members; those already running stay, for the next controller to adopt. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#closing.abort();
    await this.#filling;
  }

  async #fill(): Promise<void> {
    while (!this.#closed) {
      // Adopted members are checked first: a ready one is worth more than a new one.
      const unchecked = [...this.#members.values()].find((m) => m.status === 'starting');
      if (!unchecked && this.#wanted() <= 0) return;
      try {
        // A top-up may wait behind session starts: whether the pool still wants it is asked when its turn comes.
        await (unchecked
          ? this.#check(unchecked)
          : this.deps.launcher.inStartSlot(() => (this.#closed || this.#wanted() <= 0 ? Promise.resolve() : this.#start())));
        this.#failures = 0;
      } catch (err) {
        if (this.#closed) return;
        this.#failures += 1;
        const delayMs = Math.min(RETRY_FIRST_MS * 2 ** (this.#failures - 1), RETRY_MAX_MS);
        this.deps.log.warn({ err, retryInMs: delayMs }, 'could not start a warm session');
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.fill();
        }, delayMs).unref();
        return;
      }
    }
  }

  // Members to start: the pool size, less what sessions leave of MAX_SESSIONS, less the members there are.
  #wanted(): number {
    const { warmPoolSize, maxSessions } = this.deps.config;
    const room = Math.min(warmPoolSize, maxSessions - this.deps.activeSessions());
    return room - this.counts().members;
  }

  async #start(): Promise<void> {
    const { launcher, config } = this.deps;
    const poolId = randomBytes(6).toString('hex');
    const owner = { kind: 'pool', poolId } as const;
    const member: PoolMember = {
      poolId,
      containerName: launcher.containerName(owner),
      token: launcher.mintToken(),
      address: null,
      status: 'starting',
      readySince: 0,
    };
    // Known before anything exists, so that a concurrent reconcile leaves its volumes and folder alone.
    this.#members.set(poolId, member);
    const log = this.deps.log.child({ poolId });
    log.info({ containerName: member.containerName }, 'starting a warm session');
    const createdAt = new Date(this.deps.now());
    await this.#whileStarting(member, async () => {
      const container = await launcher.launch({
        owner,
        containerName: member.containerName,
        token: member.token,
        record: { pool_id: poolId, instance: config.instance, container_name: member.containerName, created_at: createdAt.toISOString() },
        createdAt,
        signal: this.#closing.signal,
      });
      member.address = container.address;
    });
    log.info('warm session ready');
  }

  // Waits for an adopted member's agent.
  async #check(member: PoolMember): Promise<void> {
    const owner = { kind: 'pool', poolId: member.poolId } as const;
    await this.#whileStarting(member, () => this.deps.launcher.waitReady(owner, member.containerName, member.address, member.token, this.#closing.signal));
  }

  // A member whose start fails is removed, one that starts becomes ready; closing leaves it as it is.
  async #whileStarting(member: PoolMember, start: () => Promise<void>): Promise<void> {
    try {
      await start();
    } catch (error) {
      if (this.#closed) throw error;
      this.deps.metrics.poolFailures.inc();
      if (member.status === 'starting') await this.#remove(member);
      throw error;
    }
    if (member.status !== 'starting') return;
    member.status = 'ready';
    member.readySince = performance.now();
  }

  // A member a previous controller started: kept (and checked by the fill loop) while the pool has room for it.
  async #adopt(container: RuntimeSession, poolId: string): Promise<void> {
    const token = await this.deps.store.readToken({ kind: 'pool', poolId });
    const member: PoolMember = {
      poolId,
      containerName: container.containerName,
      token: token ?? '',
      address: container.address,
      status: 'starting',
      readySince: 0,
    };
    this.#members.set(poolId, member);
    // Under another name (renamed by hand) it may hold a session's name: never hand that out as a fresh member.
    const renamed = container.containerName !== this.deps.launcher.containerName({ kind: 'pool', poolId });
    if (!token || renamed || container.state !== 'running' || this.#wanted() < 0) {
      this.deps.log.info({ poolId, state: container.state, hasToken: token !== null, renamed }, 'removing a warm session the pool cannot use');
      await this.#remove(member);
      return;
    }
    this.deps.log.info({ poolId }, 'adopted a warm session');
  }

  // Removes a member's container, volumes and folder (and a half-claimed session's folder); the pool forgets it.
  async #remove(member: PoolMember, claimedBy?: string): Promise<void> {
    member.status = 'removing';
    try {
      await this.deps.reaper.remove({ kind: 'pool', poolId: member.poolId }, member.containerName, claimedBy);
    } catch (err) {
      // What is left has no owner any more: the next reconcile removes it as an orphan.
      this.deps.log.warn({ err, poolId: member.poolId }, 'could not remove a warm session');
    } finally {
      this.#members.delete(member.poolId);
    }
  }
}
