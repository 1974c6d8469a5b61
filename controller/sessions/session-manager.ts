import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import { SessionId, type CreateSessionRequest, type SessionInfo } from '../../shared/schemas/session.js';
import type { ControllerConfig } from '../config.js';
import type { ControllerMetrics, PoolCounts, StartCounts } from '../metrics.js';
import type { AgentTarget } from '../proxy/agent-target.js';
import type { KeptWorkspace, RuntimeSession, SessionOwner, SessionRuntime } from '../runtime/session-runtime.js';
import type { ProbeAgent } from './agent-probe.js';
import type { Leadership } from './leadership.js';
import { Reaper } from './reaper.js';
import { Reconciler } from './reconciler.js';
import { SessionLauncher } from './session-launcher.js';
import type { StateStore } from './state-store.js';
import { sessionInfo, sessionNotFound, sessionStatusOf } from './session-info.js';
import { containerOwner, ownerKey, SessionTable, stateOf, type SessionRecord } from './session-table.js';
import { WarmPool } from './warm-pool.js';
import { seedWorkspace } from './workspace-template.js';

export interface SessionManagerDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  store: StateStore;
  probeAgent: ProbeAgent;
  metrics: ControllerMetrics;
  log: FastifyBaseLogger;
  /** Whether this controller runs the warm pool and removes what nobody owns (one replica at a time). */
  leadership: Leadership;
  /** The clock, replaceable in tests. */
  now?: () => number;
  /** Told when a session is being removed (deleted, expired, reconciled away): what was opened for it must close. */
  onRemoved?: (sessionId: string) => void;
}

/**
 * The session lifecycle the routes use: create, look up, extend, delete, expire. Starting containers is the
 * launcher's job, rebuilding everything from Docker after a restart the reconciler's, removing leftovers the reaper's.
 */
export class SessionManager {
  readonly #now: () => number;
  readonly #table: SessionTable;
  readonly #launcher: SessionLauncher;
  readonly #reaper: Reaper;
  readonly #pool: WarmPool;
  readonly #reconciler: Reconciler;

  constructor(private readonly deps: SessionManagerDeps) {
    this.#now = deps.now ?? Date.now;
    this.#table = new SessionTable(this.#now);
    this.#launcher = new SessionLauncher(deps);
    this.#reaper = new Reaper(deps);
    this.#pool = new WarmPool({
      ...deps,
      launcher: this.#launcher,
      reaper: this.#reaper,
      now: this.#now,
      activeSessions: () => this.count(),
      isLeader: () => deps.leadership.isLeader(),
    });
    this.#reconciler = new Reconciler({
      ...deps,
      table: this.#table,
      pool: this.#pool,
      reaper: this.#reaper,
      launcher: this.#launcher,
      expire: (sessionId) => this.#expire(sessionId),
      remove: (sessionId, container) => this.#remove(sessionId, container),
      isLeader: () => deps.leadership.isLeader(),
    });
  }

  /** Sessions that exist now, including those being created (what MAX_SESSIONS counts); warm pool members are not sessions. */
  count(): number {
    return this.#table.size;
  }

  /** Sessions that are ready and not past their time, from memory (what /metrics reports usage of). */
  readySessions(): { sessionId: string; containerName: string }[] {
    return this.#table.records().filter((r) => r.ready && !this.#table.isExpired(r)).map((r) => ({ sessionId: r.id, containerName: r.containerName }));
  }

  /** The warm pool's members and how many are ready (for metrics). */
  poolCounts(): PoolCounts {
    return this.#pool.counts();
  }

  /** Starts in a MAX_CONCURRENT_STARTS slot and those waiting for one (for metrics). */
  startCounts(): StartCounts {
    return this.#launcher.startCounts();
  }

  /** Stops topping up the warm pool; sessions and pool members keep running for the next controller. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** First reconcile after start: adopt what a previous controller left, and start stopped sessions again. */
  async start(): Promise<void> {
    try {
      await this.#reconciler.ensureReconciled(true);
    } catch (error) {
      // Docker may come up later: every request that needs the sessions retries, and so does the sweep.
      this.deps.log.error({ err: error }, 'could not reconcile sessions with Docker at start');
    }
  }

  /**
   * Starts a session. Its workspace is the one kept for its id (DELETE with keep_workspace) if there is one, else a
   * copy of `templateDir` (a host folder the routes resolved) if given, else empty.
   */
  async create(request: CreateSessionRequest, templateDir?: string): Promise<SessionInfo> {
    const ttl = this.#boundTtl(request.ttl_seconds ?? this.deps.config.sessionTtlSeconds);
    await this.#reconciler.ensureReconciled();
    const id = request.session_id;
    const existing = this.#table.get(id);
    if (existing && this.#table.isExpired(existing)) await this.#expire(id);
    if (this.#table.has(id)) throw new AppError('SESSION_EXISTS', `session ${id} already exists`);
    if (this.#table.size >= this.deps.config.maxSessions) {
      throw new AppError('TOO_MANY_SESSIONS', `at most ${this.deps.config.maxSessions} sessions may run at once`, {
        max_sessions: this.deps.config.maxSessions,
      });
    }
    // Reserved before the first await below, so a concurrent create of the same id or past the cap is refused.
    const now = this.#now();
    const record: SessionRecord = {
      id,
      containerName: this.#launcher.containerName({ kind: 'session', sessionId: id }),
      token: this.#launcher.mintToken(),
      createdAt: new Date(now),
      expiresAt: new Date(now + ttl * 1000),
      address: null,
      ready: false,
    };
    this.#table.set(record);
    const startedAt = performance.now();
    try {
      await this.#table.withLock(id, async () => {
        const kept = await this.#keptWorkspace(id);
        await this.#startSession(record, kept?.volume);
        try {
          if (kept) await this.deps.runtime.removeVolume(kept.volume);
          else if (templateDir) await this.#seed(record, templateDir);
        } catch (error) {
          // A session whose workspace could not be made is not half given: it goes with everything it made.
          await this.#remove(id).catch((err: unknown) => this.deps.log.error({ err, sessionId: id }, 'could not clean up a failed session'));
          throw error;
        }
      });
    } catch (error) {
      this.#table.delete(id);
      this.deps.metrics.sessionsFailed.inc();
      throw error;
    }
    this.deps.metrics.sessionsCreated.inc();
    this.deps.metrics.createSeconds.observe((performance.now() - startedAt) / 1000);
    this.#pool.fill();
    return sessionInfo(record, 'running');
  }

  async get(sessionId: string): Promise<SessionInfo> {
    await this.#reconciler.ensureReconciled();
    await this.#refresh(sessionId);
    const record = this.#live(sessionId);
    if (!record.ready) return sessionInfo(record, 'creating');
    const container = await this.deps.runtime.inspectSession(record.containerName);
    if (!container) {
      // Removed behind the controller's back: forget it now rather than at the next sweep.
      await this.#table.withLock(sessionId, () => this.#remove(sessionId)).catch(() => {});
      throw sessionNotFound(sessionId);
    }
    record.address = container.address ?? record.address;
    return sessionInfo(record, sessionStatusOf(container));
  }

  async list(): Promise<SessionInfo[]> {
    await this.#reconciler.ensureReconciled();
    const containers = new Map((await this.deps.runtime.listSessions()).map((c) => [ownerKey(c.owner), c]));
    const sessions: SessionInfo[] = [];
    for (const record of this.#table.records()) {
      if (this.#table.isExpired(record)) continue;
      const container = containers.get(ownerKey(containerOwner(record)));
      if (!record.ready) sessions.push(sessionInfo(record, 'creating'));
      else if (container) sessions.push(sessionInfo(record, sessionStatusOf(container)));
    }
    return sessions.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.session_id.localeCompare(b.session_id));
  }

  /** The session now expires `ttlSeconds` from now; kept in its state file so it survives a restart. */
  async extend(sessionId: string, ttlSeconds: number): Promise<SessionInfo> {
    const ttl = this.#boundTtl(ttlSeconds);
    await this.#reconciler.ensureReconciled();
    await this.#refresh(sessionId);
    await this.#table.withLock(sessionId, async () => {
      const record = this.#live(sessionId);
      if (!record.ready) throw new AppError('SESSION_NOT_READY', `session ${sessionId} is still being created`);
      const expiresAt = new Date(this.#now() + ttl * 1000);
      await this.deps.store.write(stateOf(record, this.deps.config.instance, expiresAt));
      record.expiresAt = expiresAt;
      this.deps.log.info({ sessionId, expiresAt }, 'extended session');
    });
    return this.get(sessionId);
  }

  /**
   * Removes the session's container, volumes and folder; idempotent. With `keepWorkspace` its workspace is first
   * kept for KEPT_WORKSPACE_TTL_SECONDS. Resolves to whether there was a session, and until when it is kept.
   */
  async delete(sessionId: string, keepWorkspace = false): Promise<{ found: boolean; keptUntil?: Date }> {
    // A claimed warm session's container is labelled by its pool id: only the reconciled records know it.
    await this.#reconciler.ensureReconciled();
    const result = await this.#table.withLock(sessionId, async () => {
      const containerName = this.#launcher.containerName({ kind: 'session', sessionId });
      const found = this.#table.has(sessionId) || (await this.deps.runtime.inspectSession(containerName)) !== null;
      let keptUntil: Date | undefined;
      if (found && keepWorkspace) {
        const record = this.#table.get(sessionId);
        const owner = record ? containerOwner(record) : await this.#ownerOnDisk(sessionId);
        const until = new Date(this.#now() + this.deps.config.keptWorkspaceTtlSeconds * 1000);
        const kept = await this.deps.runtime.keepWorkspace(owner, record?.containerName ?? containerName, sessionId, until);
        keptUntil = kept?.until;
      }
      await this.#remove(sessionId);
      if (found) this.deps.metrics.sessionsDeleted.inc();
      return { found, ...(keptUntil ? { keptUntil } : {}) };
    });
    this.#pool.fill();
    return result;
  }

  /** Where the proxy reaches a session's agent. */
  async resolveAgent(sessionId: string): Promise<AgentTarget> {
    if (!SessionId.safeParse(sessionId).success) throw sessionNotFound(sessionId);
    await this.#reconciler.ensureReconciled();
    await this.#refresh(sessionId);
    const record = this.#live(sessionId);
    if (!record.ready) throw new AppError('SESSION_NOT_READY', `session ${sessionId} is still being created`);
    const endpoint = this.deps.store.agentEndpoint({ kind: 'session', sessionId }, record.address);
    if (!endpoint) throw new AppError('SESSION_NOT_READY', `session ${sessionId} has no address yet`);
    return { endpoint, token: record.token, address: record.address ?? '' };
  }

  /** The periodic sweep (see Reconciler.sweep); among replicas, the leader's job alone. */
  async sweep(): Promise<void> {
    if (!this.deps.leadership.isLeader()) return;
    await this.#reconciler.sweep();
    await this.#reaper.removeExpiredKept(new Date(this.#now()));
  }

  // The kept workspace of this id while it is still valid; an expired one goes now rather than at the next sweep.
  async #keptWorkspace(sessionId: string): Promise<KeptWorkspace | null> {
    const kept = await this.deps.runtime.findKeptWorkspace(sessionId);
    if (!kept || kept.until.getTime() > this.#now()) return kept;
    await this.deps.runtime.removeVolume(kept.volume);
    return null;
  }

  async #seed(record: SessionRecord, templateDir: string): Promise<void> {
    const endpoint = this.deps.store.agentEndpoint(containerOwner(record), record.address);
    if (!endpoint) throw new AppError('SESSION_NOT_READY', `session ${record.id} has no address yet`);
    await seedWorkspace({ endpoint, token: record.token }, templateDir);
  }

  async #startSession(record: SessionRecord, restoreWorkspaceFrom?: string): Promise<void> {
    const { runtime, store, config } = this.deps;
    const log = this.deps.log.child({ sessionId: record.id });
    log.info({ containerName: record.containerName }, 'creating session');
    // Another session (or anything else) under that name is not ours to clean up: refuse before making anything.
    if (await runtime.inspectSession(record.containerName)) {
      throw new AppError('SESSION_EXISTS', `a container named ${record.containerName} already exists`);
    }
    // A kept workspace is copied in before the container starts: only a cold start can do that.
    if (!restoreWorkspaceFrom && (await this.#claimWarm(record))) return;
    const owner = { kind: 'session', sessionId: record.id } as const;
    try {
      // Queued behind other starts without a bound of its own: MAX_SESSIONS bounds the queue, and the start
      // timeout counts from when this start begins, so a burst of creates is served in turn instead of all failing.
      const container = await this.#launcher.inStartSlot(
        () =>
          this.#launcher.launch({
            owner,
            containerName: record.containerName,
            token: record.token,
            record: stateOf(record, config.instance),
            createdAt: record.createdAt,
            expiresAt: record.expiresAt,
            ...(restoreWorkspaceFrom ? { restoreWorkspaceFrom } : {}),
          }),
        log,
      );
      record.address = container.address;
      // The session exists, and its time to live runs, from when it is usable: a slow start costs the learner nothing.
      const ttlMs = record.expiresAt.getTime() - record.createdAt.getTime();
      record.createdAt = new Date(this.#now());
      record.expiresAt = new Date(record.createdAt.getTime() + ttlMs);
      await store.write(stateOf(record, config.instance));
      record.ready = true;
      log.info('created session');
    } catch (error) {
      log.warn({ err: error }, 'failed to create session; removing what it made');
      if (error instanceof AppError && error.code === 'SESSION_EXISTS') {
        // Someone took the name between the check and the create: only the folder made above is ours.
        await store.remove(owner).catch(() => {});
        throw error;
      }
      await this.#remove(record.id).catch((err: unknown) => log.error({ err }, 'could not clean up a failed session'));
      throw error instanceof AppError ? error : new AppError('SESSION_START_FAILED', 'the session could not be started', undefined, { cause: error });
    }
  }

  // A ready warm pool member becomes this session in milliseconds; false when there is none (or the claim failed).
  async #claimWarm(record: SessionRecord): Promise<boolean> {
    const member = this.#pool.take();
    if (!member) return false;
    // Set before any await: from now on reconcile sees this pool id as the session's, never as a free member.
    record.poolId = member.poolId;
    const minted = record.token;
    if (!this.deps.store.tokensTakeEffectAtOnce) record.token = member.token;
    const state = { ...stateOf(record, this.deps.config.instance), pool_id: member.poolId };
    const claimed = await this.#pool.claim(member, { state, token: record.token });
    if (!claimed) {
      record.poolId = undefined;
      record.token = minted;
      return false;
    }
    record.address = member.address;
    record.ready = true;
    return true;
  }

  async #expire(sessionId: string): Promise<void> {
    await this.#table.withLock(sessionId, async () => {
      const record = this.#table.get(sessionId);
      if (!record || !this.#table.isExpired(record)) return;
      this.deps.log.info({ sessionId }, 'session expired; removing it');
      await this.#remove(sessionId);
      this.deps.metrics.sessionsExpired.inc();
    });
  }

  // Callers hold the session's lock. A claimed warm session is found by its pool id (record, container or state).
  async #remove(sessionId: string, container?: RuntimeSession): Promise<void> {
    const record = this.#table.get(sessionId);
    const owner = record ? containerOwner(record) : (container?.owner ?? (await this.#ownerOnDisk(sessionId)));
    const containerName = record?.containerName ?? container?.containerName ?? this.#launcher.containerName({ kind: 'session', sessionId });
    this.deps.onRemoved?.(sessionId);
    await this.#reaper.remove(owner, containerName, owner.kind === 'pool' ? sessionId : undefined);
    this.#table.delete(sessionId);
  }

  // An unknown session's container is labelled by the pool id its state names, if any.
  async #ownerOnDisk(sessionId: string): Promise<SessionOwner> {
    const poolId = (await this.deps.store.read(sessionId))?.pool_id;
    return poolId ? { kind: 'pool', poolId } : { kind: 'session', sessionId };
  }

  // With replicas, another one may have created, extended or deleted the session: the store says which.
  async #refresh(sessionId: string): Promise<void> {
    if (!this.deps.runtime.shared || this.#table.isBusy(sessionId)) return;
    const record = this.#table.get(sessionId);
    if (record && !record.ready) return;
    const state = await this.deps.store.read(sessionId);
    if (!state) {
      this.#table.delete(sessionId);
      return;
    }
    if (record) {
      record.expiresAt = new Date(state.expires_at);
      return;
    }
    const container = await this.deps.runtime.inspectSession(state.container_name);
    if (container?.owner && container.state === 'running') await this.#reconciler.adopt(sessionId, { ...container, owner: container.owner });
  }

  // A session that exists for clients: known, and not past its time (an expired one is removed in the background).
  #live(sessionId: string): SessionRecord {
    const record = this.#table.get(sessionId);
    if (!record) throw sessionNotFound(sessionId);
    if (this.#table.isExpired(record)) {
      void this.#expire(sessionId).catch((err: unknown) => this.deps.log.warn({ err, sessionId }, 'could not remove expired session'));
      throw sessionNotFound(sessionId);
    }
    return record;
  }

  #boundTtl(ttlSeconds: number): number {
    const max = this.deps.config.maxTtlSeconds;
    if (ttlSeconds > max) throw new AppError('VALIDATION', `ttl_seconds must be at most ${max}`, { max_ttl_seconds: max });
    return ttlSeconds;
  }
}
