import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import type { AgentHealth } from '../../shared/schemas/health.js';
import { SessionId, type CreateSessionRequest, type SessionInfo, type SessionStatus } from '../../shared/schemas/session.js';
import type { ControllerConfig } from '../config.js';
import type { ControllerMetrics } from '../metrics.js';
import type { AgentTarget } from '../proxy/agent-target.js';
import type { RuntimeSession, SessionRuntime } from '../runtime/session-runtime.js';
import type { ProbeAgent } from './agent-probe.js';
import type { SessionState, SessionStore } from './session-store.js';

export interface SessionManagerDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  store: SessionStore;
  probeAgent: ProbeAgent;
  metrics: ControllerMetrics;
  log: FastifyBaseLogger;
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
}

const READY_POLL_MS = 100;
const CONTAINER_CHECK_EVERY = 10;
const FAILED_START_LOG_LINES = 30;
// A daemon that crashed this often before it ever answered will not come up: fail now rather than at the timeout.
const MAX_DAEMON_RESTARTS_AT_START = 5;

/** The session lifecycle: create, look up, extend, delete, expire, and rebuild everything from Docker after a restart. */
export class SessionManager {
  readonly #sessions = new Map<string, SessionRecord>();
  // One operation per session at a time (create, extend, delete, expire); reconcile skips ids that are busy.
  readonly #locks = new Map<string, Promise<void>>();
  #reconciled: Promise<void> | null = null;
  readonly #now: () => number;

  constructor(private readonly deps: SessionManagerDeps) {
    this.#now = deps.now ?? Date.now;
  }

  /** Sessions that exist now, including those being created (what MAX_SESSIONS counts). */
  count(): number {
    return this.#sessions.size;
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
    const containers = new Map((await this.deps.runtime.listSessions()).map((c) => [c.sessionId, c]));
    const sessions: SessionInfo[] = [];
    for (const record of this.#sessions.values()) {
      if (this.#isExpired(record)) continue;
      const container = containers.get(record.id);
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
    return this.#withLock(sessionId, async () => {
      const found = this.#sessions.has(sessionId) || (await this.deps.runtime.inspectSession(this.containerName(sessionId))) !== null;
      await this.#remove(sessionId);
      if (found) this.deps.metrics.sessionsDeleted.inc();
      return found;
    });
  }

  /** Where the proxy reaches a session's agent. */
  async resolveAgent(sessionId: string): Promise<AgentTarget> {
    if (!SessionId.safeParse(sessionId).success) throw notFound(sessionId);
    await this.#ensureReconciled();
    const record = this.#live(sessionId);
    if (!record.ready) throw new AppError('SESSION_NOT_READY', `session ${sessionId} is still being created`);
    return { socketPath: this.deps.store.agentSocketPath(sessionId), token: record.token, address: record.address ?? '' };
  }

  /** The periodic sweep: the first reconcile if Docker was away at start, a plain one after that. */
  async sweep(): Promise<void> {
    const first = this.#reconciled === null;
    await this.#ensureReconciled(true);
    if (!first) await this.#reconcile();
  }

  /**
   * Brings memory in line with Docker and the state files: expires what is due, adopts sessions it does not know
   * (a previous controller's), forgets sessions whose container vanished, and removes orphaned volumes and folders.
   */
  async #reconcile(startStopped = false): Promise<void> {
    const { runtime, store, log } = this.deps;
    const containers = await runtime.listSessions();
    const present = new Set(containers.map((c) => c.sessionId));
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
      log.warn({ sessionId: record.id }, 'session container vanished; removing what is left of it');
      await this.#isolate(record.id, 'remove vanished session', () => this.#withLock(record.id, () => this.#remove(record.id)));
    }
    const owned = (id: string): boolean => present.has(id) || this.#sessions.has(id) || this.#locks.has(id);
    for (const volume of await runtime.listVolumes()) {
      if (owned(volume.sessionId)) continue;
      log.info({ volume: volume.name }, 'removing orphaned volume');
      await this.#isolate(volume.sessionId, 'remove orphaned volume', () => runtime.removeVolume(volume.name));
    }
    for (const id of await store.list()) {
      if (owned(id)) continue;
      log.info({ sessionId: id }, 'removing orphaned session folder');
      await this.#isolate(id, 'remove orphaned folder', () => store.remove(id));
    }
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
    try {
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
      await this.#waitReady(record, config.sessionStartTimeoutSeconds * 1000);
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

  async #waitReady(record: SessionRecord, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const socketPath = this.deps.store.agentSocketPath(record.id);
    let last: AgentHealth | null = null;
    // The agent's own account of its daemon explains a failure better than its logs, which are mostly our probes.
    const failed = (message: string): AppError =>
      new AppError('SESSION_START_FAILED', message, last ? { daemon_error: last.daemon.last_error } : undefined);
    for (let attempt = 1; ; attempt++) {
      const health = await this.deps.probeAgent(socketPath, record.token);
      last = health ?? last;
      if (health?.status === 'healthy' && health.daemon.ready) return;
      if (health && health.daemon.restarts >= MAX_DAEMON_RESTARTS_AT_START) {
        throw failed(`the session's inner Docker daemon failed to start ${health.daemon.restarts} times`);
      }
      if (attempt % CONTAINER_CHECK_EVERY === 0) {
        const container = await this.deps.runtime.inspectSession(record.containerName);
        if (!container || container.state === 'stopped') throw failed('the session container stopped while starting');
      }
      if (performance.now() > deadline) throw failed(`the session's agent was not ready within ${timeoutMs / 1000} s`);
      await sleep(READY_POLL_MS);
    }
  }

  // A session a previous controller made: its state file, or (if that is lost) the expiry in its labels.
  async #adopt(container: RuntimeSession): Promise<SessionRecord | null> {
    const { store, log } = this.deps;
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
      await this.#withLock(container.sessionId, () => this.#remove(container.sessionId));
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

  // Callers hold the session's lock.
  async #remove(sessionId: string): Promise<void> {
    await this.deps.runtime.removeSession(sessionId, this.#sessions.get(sessionId)?.containerName ?? this.containerName(sessionId));
    await this.deps.store.remove(sessionId);
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

function statusOf(container: RuntimeSession): SessionStatus {
  if (container.state === 'running') return 'running';
  if (container.state === 'restarting') return 'restarting';
  return 'stopped';
}
