import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import pLimit, { type LimitFunction } from 'p-limit';
import { AppError } from '../../shared/errors.js';
import type { ControllerConfig } from '../config.js';
import type { StartCounts } from '../metrics.js';
import type { RuntimeSession, SessionOwner, SessionRuntime } from '../runtime/session-runtime.js';
import { waitAgentReady, type ProbeAgent } from './agent-probe.js';
import type { RecordOf } from './session-store.js';
import type { StateStore } from './state-store.js';

export interface LauncherDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  store: StateStore;
  probeAgent: ProbeAgent;
  log: FastifyBaseLogger;
}

/** One start: whose it is, under which name, with which token, and the record its folder keeps. */
export interface Launch<O extends SessionOwner> {
  owner: O;
  containerName: string;
  token: string;
  record: RecordOf<O>;
  createdAt: Date;
  /** None for a pool member: its time starts when a session claims it. */
  expiresAt?: Date;
  /** A kept workspace volume the new workspace starts as a copy of. */
  restoreWorkspaceFrom?: string;
  /** Stops waiting for the agent (the controller is closing); the launch then rejects with an AbortError. */
  signal?: AbortSignal;
}

const FAILED_START_LOG_LINES = 30;

/**
 * Starts session containers, cold for a session or ahead for the warm pool, by one path: names, a fresh agent
 * token, the owner's folder, the container, and the wait until its agent and inner daemon are ready. It also
 * holds the MAX_CONCURRENT_STARTS slots that cold starts and warm pool top-ups share (a warm claim needs none).
 */
export class SessionLauncher {
  readonly #startSlots: LimitFunction;

  constructor(private readonly deps: LauncherDeps) {
    this.#startSlots = pLimit(deps.config.maxConcurrentStarts);
  }

  /** A session keeps an id that already carries the name prefix; a pool member's name can never be a session's (a `.`). */
  containerName(owner: SessionOwner): string {
    const { namePrefix } = this.deps.config;
    if (owner.kind === 'pool') return `${namePrefix}warm.${owner.poolId}`;
    return owner.sessionId.startsWith(namePrefix) ? owner.sessionId : `${namePrefix}${owner.sessionId}`;
  }

  /** A new agent token: only the controller and the one agent ever hold it. */
  mintToken(): string {
    return randomBytes(32).toString('hex');
  }

  /** Starts in a slot and those waiting for one (for metrics). */
  startCounts(): StartCounts {
    return { running: this.#startSlots.activeCount, queued: this.#startSlots.pendingCount };
  }

  /** Runs `start` in a MAX_CONCURRENT_STARTS slot, waiting for one if all are taken. */
  inStartSlot<T>(start: () => Promise<T>, log: FastifyBaseLogger = this.deps.log): Promise<T> {
    const slots = this.#startSlots;
    if (slots.activeCount >= slots.concurrency) log.info({ running: slots.activeCount, queued: slots.pendingCount + 1 }, 'waiting for a start slot');
    return slots(start);
  }

  /**
   * Makes the owner's folder and container and waits for its agent. Callers run it in a start slot and remove what
   * it made when it fails; the error is an AppError with the container's last lines when they explain the failure.
   */
  async launch<O extends SessionOwner>(launch: Launch<O>): Promise<RuntimeSession> {
    const { runtime, store } = this.deps;
    const { owner, containerName } = launch;
    try {
      await store.ensureRoot();
      await store.create(owner, launch.token, launch.record);
      const container = await runtime.createSession({
        owner,
        containerName,
        ...(store.agentDir ? { agentDir: store.agentDir(owner) } : {}),
        createdAt: launch.createdAt,
        ...(launch.expiresAt ? { expiresAt: launch.expiresAt } : {}),
        ...(launch.restoreWorkspaceFrom ? { restoreWorkspaceFrom: launch.restoreWorkspaceFrom } : {}),
      });
      await this.waitReady(owner, containerName, container.address, launch.token, launch.signal);
      return container;
    } catch (error) {
      if (launch.signal?.aborted) throw error;
      throw await this.#explain(error, containerName);
    }
  }

  /** Waits until a started container's agent answers `token` with its inner daemon ready (SESSION_START_FAILED if not). */
  async waitReady(owner: SessionOwner, containerName: string, address: string | null, token: string, signal?: AbortSignal): Promise<void> {
    const endpoint = this.deps.store.agentEndpoint(owner, address);
    if (!endpoint) throw new AppError('SESSION_START_FAILED', `session ${containerName} has no address to reach its agent at`);
    await waitAgentReady({
      probeAgent: this.deps.probeAgent,
      runtime: this.deps.runtime,
      endpoint,
      token,
      containerName,
      timeoutMs: this.deps.config.sessionStartTimeoutSeconds * 1000,
      ...(signal ? { signal } : {}),
    });
  }

  // The container's own last lines say more than any message of ours, unless the agent already said why.
  async #explain(error: unknown, containerName: string): Promise<AppError> {
    const appError = error instanceof AppError ? error : new AppError('SESSION_START_FAILED', 'the session could not be started', undefined, { cause: error });
    if (appError.code === 'SESSION_EXISTS' || appError.details?.daemon_error) return appError;
    const logs = await this.deps.runtime.tailLogs(containerName, FAILED_START_LOG_LINES).catch(() => []);
    return logs.length ? new AppError(appError.code, appError.message, { ...appError.details, logs }, { cause: error }) : appError;
  }
}
