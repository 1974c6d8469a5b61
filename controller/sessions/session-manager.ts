import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import pLimit, { type LimitFunction } from 'p-limit';
import { AppError } from '../../shared/errors.js';
import { SessionId, type CreateSessionRequest, type SessionInfo, type SessionStatus } from '../../shared/schemas/session.js';
import type { PoolCounts, StartCounts } from '../metrics.js';
import type { AgentTarget } from '../proxy/agent-target.js';
import type { RuntimeSession } from '../runtime/session-runtime.js';
import { waitAgentReady } from './agent-probe.js';
import type { SessionState } from './session-store.js';
import { WarmPool, type SessionServices } from './warm-pool.js';

export interface SessionManagerDeps extends SessionServices {
  /** The clock, replaceable in tests. */
  now?: () => number;
}

// What the controller remembers of a session: a cache of Docker and the state file, rebuilt by reconcile().
interface SessionRecord {
  id: string;
  containerName: string;
  token: string;
  createdAt: Date;
  expiresAt: Date;
  address: string | null;
  /** False while POST /sessions is still waiting for the agent. */
  ready: boolean;
  /** Set when the session is a claimed warm pool member: its container and volumes carry this id, not the session's. */
  poolId?: string;
}

const FAILED_START_LOG_LINES = 30;

/** The session lifecycle: create, look up, extend, delete, expire, and rebuild everything from Docker after a restart. */
export class SessionManager {
  readonly #sessions = new Map<string, SessionRecord>();
  // One operation per session at a time (create, extend, delete, expire); reconcile skips ids that are busy.
  readonly #locks = new Map<string, Promise<void>>();
  #reconciled: Promise<void> | null = null;
  readonly #now: () => number;
  readonly #pool: WarmPool;
  // MAX_CONCURRENT_STARTS: cold starts and warm pool top-ups share these slots; a warm claim needs none.
  readonly #startSlots: LimitFunction;

  constructor(private readonly deps: SessionManagerDeps) {
    this.#now = deps.now ?? Date.now;
    this.#startSlots = pLimit(deps.config.maxConcurrentStarts);
    this.#pool = new WarmPool({ ...deps, now: this.#now, activeSessions: () => this.count(), startSlot: (fn) => this.#inStartSlot(fn) });
  }

  /** Sessions that exist now, including those being created (what MAX_SESSIONS counts); warm pool members are not sessions. */
  count(): number {
    return this.#sessions.size;
  }

  /** The warm pool's members and how many are ready (for metrics). */
  poolCounts(): PoolCounts {
    return this.#pool.counts();
  }

  /** Starts in a MAX_CONCURRENT_STARTS slot and those waiting for one (for metrics). */
  startCounts(): StartCounts {
    return { running: this.#startSlots.activeCount, queued: this.#startSlots.pendingCount };
  }

  /** Stops topping up the warm pool; sessions and pool members keep running for the next controller. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  containerName(sessionId: string): string {
    const { namePrefix } = this.deps.config;
    return sessionId.startsWith(namePrefix) ? sessionId : `${namePrefix}${sessionId}`;
  }

  /** First reconcile after start: adopt what a previous controller left, and start stopped sessions again. */
  async start(): Promise<void> {
    try {
      await this.#ensureReconciled(true);
    } catch (error) {
      // Docker may come up later: every request that needs the sessions retries, and so does the sweep.
      this.deps.log.error({ err: error }, 'could not reconcile sessions with Docker at start');
    }
  }

  async create(request: CreateSessionRequest): Promise<SessionInfo> {
    const ttl = this.#boundTtl(request.ttl_seconds ?? this.deps.config.sessionTtlSeconds);
    await this.#ensureReconciled();
    const id = request.session_id;
    const existing = this.#sessions.get(id);
    if (existing && this.#isExpired(existing)) await this.#expire(id);
    if (this.#sessions.has(id)) throw new AppError('SESSION_EXISTS', `session ${id} already exists`);
    if (this.#sessions.size >= this.deps.config.maxSessions) {
      throw new AppError('TOO_MANY_SESSIONS', `at most ${this.deps.config.maxSessions} sessions may run at once`, {
        max_sessions: this.deps.config.maxSessions,
      });
    }
    // Reserved before the first await below, so a concurrent create of the same id or past the cap is refused.
    const now = this.#now();
    const record: SessionRecord = {
      id,
      containerName: this.containerName(id),
      token: randomBytes(32).toString('hex'),
      createdAt: new Date(now),
      expiresAt: new Date(now + ttl * 1000),
      address: null,
      ready: false,
    };
    this.#sessions.set(id, record);
    const startedAt = performance.now();
    try {
      await this.#withLock(id, () => this.#startSession(record));
    } catch (error) {
      this.#sessions.delete(id);
      this.deps.metrics.sessionsFailed.inc();
      throw error;
    }
    this.deps.metrics.sessionsCreated.inc();
    this.deps.metrics.createSeconds.observe((performance.now() - startedAt) / 1000);
    this.#pool.fill();
    return this.#info(record, 'running');
  }

  async get(sessionId: string): Promise<SessionInfo> {
    await this.#ensureReconciled();
    const record = this.#live(sessionId);
    if (!record.ready) return this.#info(record, 'creating');
    const container = await this.deps.runtime.inspectSession(record.containerName);
    if (!container) {
      // Removed behind the controller's back: forget it now rather than at the next sweep.
      await this.#withLock(sessionId, () => this.#remove(sessionId)).catch(() => {});
      throw notFound(sessionId);
    }
    record.address = container.address ?? record.address;
    return this.#info(record, statusOf(container));
  }

  async list(): Promise<SessionInfo[]> {
    await this.#ensureReconciled();
    const containers = new Map((await this.deps.runtime.listSessions()).map((c) => [ownerKey(c), c]));
    const sessions: SessionInfo[] = [];
    for (const record of this.#sessions.values()) {
      if (this.#isExpired(record)) continue;
      const container = containers.get(ownerKey({ sessionId: record.id, poolId: record.poolId }));
      if (!record.ready) sessions.push(this.#info(record, 'creating'));
      else if (container) sessions.push(this.#info(record, statusOf(container)));
    }
    return sessions.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.session_id.localeCompare(b.session_id));
  }

  /** The session now expires `ttlSeconds` from now; kept in its state file so it survives a restart. */
  async extend(sessionId: string, ttlSeconds: number): Promise<SessionInfo> {
    const ttl = this.#boundTtl(ttlSeconds);
    await this.#ensureReconciled();
    await this.#withLock(sessionId, async () => {
      const record = this.#live(sessionId);
      if (!record.ready) throw new AppError('SESSION_NOT_READY', `session ${sessionId} is still being created`);
      const expiresAt = new Date(this.#now() + ttl * 1000);
      await this.deps.store.write(this.#state(record, expiresAt)).catch((error: unknown) => {
        // A host file-system error is the controller's trouble, not a missing file of the client's.
        throw new AppError('INTERNAL', 'could not save the new expiry', undefined, { cause: error });
      });
      record.expiresAt = expiresAt;
      this.deps.log.info({ sessionId, expiresAt }, 'extended session');
    });
    return this.get(sessionId);
  }

  /** Removes the session's container, volumes and folder; idempotent. Resolves to whether there was a session. */
  async delete(sessionId: string): Promise<boolean> {
    // A claimed warm session's container is labelled by its pool id: only the reconciled records know it.
    await this.#ensureReconciled();
    const found = await this.#withLock(sessionId, async () => {
      const found = this.#sessions.has(sessionId) || (await this.deps.runtime.inspectSession(this.containerName(sessionId))) !== null;
      await this.#remove(sessionId);
      if (found) this.deps.metrics.sessionsDeleted.inc();
      return found;
    });
    this.#pool.fill();
    return found;
  }

  /** Where the proxy reaches a session's agent. */
  async resolveAgent(sessionId: string): Promise<AgentTarget> {
    if (!SessionId.safeParse(sessionId).success) throw notFound(sessionId);
    await this.#ensureReconciled();
    const record = this.#live(sessionId);
    if (!record.ready) throw new AppError('SESSION_NOT_READY', `session ${sessionId} is still being created`);
    return { socketPath: this.deps.store.agentSocketPath(sessionId), token: record.token, address: record.address ?? '' };
  }

  /**
   * The periodic sweep: the first reconcile if Docker was away at start, then one that also starts stopped
   * sessions (an engine restart stops them cleanly, which the on-failure restart policy leaves alone).
   */
  async sweep(): Promise<void> {
    const first = this.#reconciled === null;
    await this.#ensureReconciled(true);
    if (!first) await this.#reconcile(true);
  }

  /**
   * Brings memory in line with Docker and the state files: expires what is due, adopts sessions it does not know
   * (a previous controller's), forgets sessions whose container vanished, and removes orphaned volumes and folders.
   */
  async #reconcile(startStopped = false): Promise<void> {
    const { runtime, store, log } = this.deps;
    const listedAt = performance.now();
    const listed = await runtime.listSessions();
    // A pool member a session claimed is that session (its state names the pool id); the others are the pool's.
    const claims = await store.poolClaims();
    const containers: RuntimeSession[] = [];
    const poolContainers: RuntimeSession[] = [];
    for (const c of listed) {
      const claimedBy = c.poolId && claims.get(c.poolId);
      if (!c.poolId) containers.push(c);
      else if (claimedBy) containers.push({ ...c, sessionId: claimedBy });
      else poolContainers.push(c);
    }
    const present = new Set(containers.map((c) => c.sessionId));
    const presentPools = new Set(listed.map((c) => c.poolId));
    for (const container of containers) {
      if (this.#locks.has(container.sessionId)) continue;
      await this.#isolate(container.sessionId, 'reconcile session', async () => {
        const record = this.#sessions.get(container.sessionId) ?? (await this.#adopt(container));
        if (!record) return;
        record.address = container.address ?? record.address;
        if (this.#isExpired(record)) await this.#expire(record.id);
        else if (startStopped && container.state === 'stopped') {
          log.info({ sessionId: record.id }, 'starting stopped session');
          await runtime.startSession(record.containerName);
        }
      });
    }
    for (const record of [...this.#sessions.values()]) {
      if (!record.ready || present.has(record.id) || this.#locks.has(record.id)) continue;
      // Claimed after the claims were read: listed as a pool container, but there.
      if (record.poolId && presentPools.has(record.poolId)) continue;
      log.warn({ sessionId: record.id }, 'session container vanished; removing what is left of it');
      await this.#isolate(record.id, 'remove vanished session', () => this.#withLock(record.id, () => this.#remove(record.id)));
    }
    await this.#pool.reconcile(poolContainers, listedAt, (poolId) => this.#claimedPool(poolId));
    const owned = (id: string): boolean => present.has(id) || this.#sessions.has(id) || this.#locks.has(id);
    const ownedPool = (poolId: string): boolean => presentPools.has(poolId) || this.#pool.has(poolId) || this.#claimedPool(poolId);
    for (const volume of await runtime.listVolumes()) {
      if (volume.poolId ? ownedPool(volume.poolId) : owned(volume.sessionId)) continue;
      log.info({ volume: volume.name }, 'removing orphaned volume');
      await this.#isolate(volume.sessionId || (volume.poolId ?? ''), 'remove orphaned volume', () => runtime.removeVolume(volume.name));
    }
    for (const id of await store.list()) {
      if (owned(id)) continue;
      log.info({ sessionId: id }, 'removing orphaned session folder');
      await this.#isolate(id, 'remove orphaned folder', () => store.remove(id));
    }
    for (const poolId of await store.listPool()) {
      if (ownedPool(poolId)) continue;
      log.info({ poolId }, 'removing orphaned warm session folder');
      await this.#isolate(poolId, 'remove orphaned warm session folder', () => store.removePoolMember(poolId));
    }
  }

  // Whether a session (being created or not) has claimed this pool member.
  #claimedPool(poolId: string): boolean {
    for (const record of this.#sessions.values()) if (record.poolId === poolId) return true;
    return false;
  }

  async #ensureReconciled(startStopped = false): Promise<void> {
    this.#reconciled ??= this.#reconcile(startStopped).catch((error: unknown) => {
      this.#reconciled = null;
      throw error;
    });
    await this.#reconciled;
  }

  async #startSession(record: SessionRecord): Promise<void> {
    const { runtime, store, config } = this.deps;
    const log = this.deps.log.child({ sessionId: record.id });
    log.info({ containerName: record.containerName }, 'creating session');
    // Another session (or anything else) under that name is not ours to clean up: refuse before making anything.
    if (await runtime.inspectSession(record.containerName)) {
      throw new AppError('SESSION_EXISTS', `a container named ${record.containerName} already exists`);
    }
    if (await this.#claimWarm(record)) return;
    try {
      // Queued behind other starts without a bound of its own: MAX_SESSIONS bounds the queue, and the start
      // timeout counts from when this start begins, so a burst of creates is served in turn instead of all failing.
      await this.#inStartSlot(async () => {
        await store.ensureRoot();
        await store.create(this.#state(record, record.expiresAt), record.token);
        const container = await runtime.createSession({
          sessionId: record.id,
          containerName: record.containerName,
          agentDir: store.agentDir(record.id),
          createdAt: record.createdAt,
          expiresAt: record.expiresAt,
        });
        record.address = container.address;
        await waitAgentReady({
          probeAgent: this.deps.probeAgent,
          runtime,
          socketPath: store.agentSocketPath(record.id),
          token: record.token,
          containerName: record.containerName,
          timeoutMs: config.sessionStartTimeoutSeconds * 1000,
        });
      }, log);
      // The session exists, and its time to live runs, from when it is usable: a slow start costs the learner nothing.
      const ttlMs = record.expiresAt.getTime() - record.createdAt.getTime();
      record.createdAt = new Date(this.#now());
      record.expiresAt = new Date(record.createdAt.getTime() + ttlMs);
      await store.write(this.#state(record, record.expiresAt));
      record.ready = true;
      log.info('created session');
    } catch (error) {
      const appError = error instanceof AppError ? error : new AppError('SESSION_START_FAILED', 'the session could not be started', undefined, { cause: error });
      log.warn({ err: error }, 'failed to create session; removing what it made');
      if (appError.code === 'SESSION_EXISTS') {
        // Someone took the name between the check and the create: only the folder made above is ours.
        await store.remove(record.id).catch(() => {});
        throw appError;
      }
      const logs = appError.details?.daemon_error ? [] : await runtime.tailLogs(record.containerName, FAILED_START_LOG_LINES).catch(() => []);
      await this.#remove(record.id).catch((err: unknown) => log.error({ err }, 'could not clean up a failed session'));
      throw logs.length ? new AppError(appError.code, appError.message, { ...appError.details, logs }, { cause: error }) : appError;
    }
  }

  // Runs one start (container up to agent ready) in a MAX_CONCURRENT_STARTS slot, waiting for one if all are taken.
  #inStartSlot<T>(start: () => Promise<T>, log: FastifyBaseLogger = this.deps.log): Promise<T> {
    const slots = this.#startSlots;
    if (slots.activeCount >= slots.concurrency) log.info({ running: slots.activeCount, queued: slots.pendingCount + 1 }, 'waiting for a start slot');
    return slots(start);
  }

  // A ready warm pool member becomes this session in milliseconds; false when there is none (or the claim failed).
  async #claimWarm(record: SessionRecord): Promise<boolean> {
    const member = this.#pool.take();
    if (!member) return false;
    // Set before any await: from now on reconcile sees this pool id as the session's, never as a free member.
    record.poolId = member.poolId;
    const state = { ...this.#state(record, record.expiresAt), pool_id: member.poolId };
    const claimed = await this.#pool.claim(member, { state, token: record.token });
    if (!claimed) {
      record.poolId = undefined;
      return false;
    }
    record.address = member.address;
    record.ready = true;
    return true;
  }

  // A session a previous controller made: its state file, or (if that is lost) the expiry in its labels.
  async #adopt(container: RuntimeSession): Promise<SessionRecord | null> {
    const { store, log } = this.deps;
    if (container.poolId) await this.#settleClaim(container);
    const token = await store.readToken(container.sessionId);
    let state = await store.read(container.sessionId);
    if (!state && token && container.createdAt && container.expiresAt) {
      state = {
        session_id: container.sessionId,
        instance: this.deps.config.instance,
        container_name: container.containerName,
        created_at: container.createdAt.toISOString(),
        expires_at: container.expiresAt.toISOString(),
      };
      await store.write(state);
    }
    if (!state || !token) {
      // Without its token the agent cannot be reached: the session is of no use to anyone.
      log.warn({ sessionId: container.sessionId }, 'session has lost its token or state; removing it');
      await this.#withLock(container.sessionId, () => this.#remove(container.sessionId, container));
      return null;
    }
    const record: SessionRecord = {
      id: container.sessionId,
      containerName: container.containerName,
      token,
      createdAt: new Date(state.created_at),
      expiresAt: new Date(state.expires_at),
      address: container.address,
      ready: true,
      ...(container.poolId ? { poolId: container.poolId } : {}),
    };
    this.#sessions.set(record.id, record);
    log.info({ sessionId: record.id, expiresAt: record.expiresAt }, 'adopted session');
    return record;
  }

  async #expire(sessionId: string): Promise<void> {
    await this.#withLock(sessionId, async () => {
      const record = this.#sessions.get(sessionId);
      if (!record || !this.#isExpired(record)) return;
      this.deps.log.info({ sessionId }, 'session expired; removing it');
      await this.#remove(sessionId);
      this.deps.metrics.sessionsExpired.inc();
    });
  }

  // A claim the previous controller did not finish: the folder moved and the container named after the session.
  async #settleClaim(container: RuntimeSession): Promise<void> {
    await this.deps.store.settleClaim(container.poolId!, container.sessionId);
    const name = this.containerName(container.sessionId);
    if (container.containerName === name) return;
    await this.deps.runtime.renameSession(container.containerName, name).then(
      () => {
        container.containerName = name;
      },
      (err: unknown) => this.deps.log.warn({ err, sessionId: container.sessionId }, 'could not give a claimed warm session its name'),
    );
  }

  // Callers hold the session's lock. A claimed warm session is found by its pool id (record, container or state).
  async #remove(sessionId: string, container?: RuntimeSession): Promise<void> {
    const { runtime, store } = this.deps;
    const record = this.#sessions.get(sessionId);
    const poolId = record?.poolId ?? container?.poolId ?? (await store.read(sessionId))?.pool_id;
    await runtime.removeSession(sessionId, record?.containerName ?? container?.containerName ?? this.containerName(sessionId), poolId);
    await store.remove(sessionId);
    if (poolId) await store.removePoolMember(poolId);
    this.#sessions.delete(sessionId);
  }

  // A session that exists for clients: known, and not past its time (an expired one is removed in the background).
  #live(sessionId: string): SessionRecord {
    const record = this.#sessions.get(sessionId);
    if (!record) throw notFound(sessionId);
    if (this.#isExpired(record)) {
      void this.#expire(sessionId).catch((err: unknown) => this.deps.log.warn({ err, sessionId }, 'could not remove expired session'));
      throw notFound(sessionId);
    }
    return record;
  }

  #isExpired(record: SessionRecord): boolean {
    return record.ready && record.expiresAt.getTime() <= this.#now();
  }

  #boundTtl(ttlSeconds: number): number {
    const max = this.deps.config.maxTtlSeconds;
    if (ttlSeconds > max) throw new AppError('VALIDATION', `ttl_seconds must be at most ${max}`, { max_ttl_seconds: max });
    return ttlSeconds;
  }

  #state(record: SessionRecord, expiresAt: Date): SessionState {
    return {
      session_id: record.id,
      instance: this.deps.config.instance,
      container_name: record.containerName,
      created_at: record.createdAt.toISOString(),
      expires_at: expiresAt.toISOString(),
      ...(record.poolId ? { pool_id: record.poolId } : {}),
    };
  }

  #info(record: SessionRecord, status: SessionStatus): SessionInfo {
    return {
      session_id: record.id,
      container_name: record.containerName,
      status,
      created_at: record.createdAt.toISOString(),
      expires_at: record.expiresAt.toISOString(),
    };
  }

  async #withLock<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(sessionId) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#locks.set(sessionId, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(sessionId) === tail) this.#locks.delete(sessionId);
    }
  }

  // One session's trouble must not stop a sweep over the others.
  async #isolate(sessionId: string, what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.deps.log.warn({ err, sessionId }, `could not ${what}`);
    }
  }
}

function notFound(sessionId: string): AppError {
  return new AppError('SESSION_NOT_FOUND', `no session ${sessionId}`);
}

// Which container is whose: a claimed warm session's by its pool id, every other session's by its id.
function ownerKey(owner: { sessionId: string; poolId?: string }): string {
  return owner.poolId ? `pool:${owner.poolId}` : owner.sessionId;
}

function statusOf(container: RuntimeSession): SessionStatus {
  if (container.state === 'running') return 'running';
  if (container.state === 'restarting') return 'restarting';
  return 'stopped';
}
