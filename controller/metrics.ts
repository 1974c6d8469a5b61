import type { FastifyPluginAsync } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ControllerRoute } from '../shared/routes.js';
import type { SessionUsage } from '../shared/schemas/session.js';

/** How many warm pool sessions there are, and how many of them are ready. */
export interface PoolCounts {
  members: number;
  ready: number;
}

/** Session starts (cold creates and warm-pool top-ups) in a MAX_CONCURRENT_STARTS slot, and those waiting for one. */
export interface StartCounts {
  running: number;
  queued: number;
}

/** One session's usage, as a scrape reports it. */
export interface SessionUsageRow {
  sessionId: string;
  usage: SessionUsage | null;
}

/** What the gauges read when scraped. */
export interface GaugeSources {
  activeSessions(): number;
  pool(): PoolCounts;
  starts(): StartCounts;
  /** The usage of every running session (at most MAX_SESSIONS of them); none when the runtime does not measure it. */
  sessionUsage?(): Promise<SessionUsageRow[]>;
  /** Bytes free where the sessions' own filesystems live; null (no gauge value) when they have none. */
  diskFreeBytes?(): Promise<number | null>;
}

// Each figure of a session's usage and the gauge that reports it, labelled by session id.
const USAGE_GAUGES = [
  ['memory_bytes', 'runner_session_memory_bytes', 'Memory a session uses now, as docker stats counts it (cgroup usage less inactive file cache)'],
  ['memory_limit_bytes', 'runner_session_memory_limit_bytes', "A session's memory limit"],
  ['cpu_seconds', 'runner_session_cpu_seconds', "CPU time a session's processes used since it started (all cores)"],
  ['pids', 'runner_session_pids', 'Processes and threads in a session now'],
  ['disk_bytes', 'runner_session_disk_bytes', "Bytes on disk of a session's workspace and inner daemon data (statfs, or the last background walk)"],
] as const;

/** The controller's Prometheus metrics, in a registry of its own so that several apps (tests) never collide. */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly sessionsCreated = this.#counter('runner_sessions_created_total', 'Sessions created and ready');
  readonly sessionsFailed = this.#counter(
    'runner_sessions_failed_total',
    'Session creations that failed (everything they made was removed)',
  );
  readonly sessionsExpired = this.#counter('runner_sessions_expired_total', 'Sessions removed because their time ran out');
  readonly sessionsDeleted = this.#counter('runner_sessions_deleted_total', 'Sessions removed by DELETE /sessions/{id}');
  readonly createSeconds = this.#histogram(
    'runner_session_create_seconds',
    'Time from POST /sessions to the agent healthy with its inner daemon ready, including any wait for a start slot',
    [0.5, 1, 1.5, 2, 3, 5, 10, 20, 40, 90],
  );
  readonly proxySeconds = this.#histogram(
    'runner_proxy_request_seconds',
    'Requests proxied to agents: time to the response head (http) or the whole connection (ws)',
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    ['kind', 'status_code'],
  );
  readonly poolClaims = this.#counter('runner_warm_pool_claims_total', 'POST /sessions served by claiming a warm pool session');
  readonly poolMisses = this.#counter(
    'runner_warm_pool_misses_total',
    'POST /sessions that found no ready warm session and started one cold (pool enabled)',
  );
  readonly poolFailures = this.#counter(
    'runner_warm_pool_failures_total',
    'Warm pool sessions that failed to start or to be claimed (each was removed)',
  );
  readonly poolClaimSeconds = this.#histogram(
    'runner_warm_pool_claim_seconds',
    'Time to hand a ready warm session to a new session id (new token, state, container name)',
    [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
  );
  readonly errors = this.#counter('runner_errors_total', 'Error responses of the controller by code', ['code']);

  constructor(read: GaugeSources) {
    this.#gauge('runner_sessions_active', 'Sessions that exist now (being created or running)', () => read.activeSessions());
    this.#gauge(
      'runner_warm_pool_size',
      'Warm pool sessions started ahead and not claimed (starting or ready)',
      () => read.pool().members,
    );
    this.#gauge('runner_warm_pool_ready', 'Warm pool sessions ready to be claimed', () => read.pool().ready);
    this.#gauge('runner_session_starts_running', 'Session starts running now (at most MAX_CONCURRENT_STARTS)', () => read.starts().running);
    this.#gauge('runner_session_starts_queued', 'Session starts waiting for a start slot', () => read.starts().queued);
    if (read.sessionUsage) this.#usageGauges(read.sessionUsage);
    if (read.diskFreeBytes) {
      this.#gauge(
        'runner_session_disks_free_bytes',
        "Bytes free on the host filesystem of the sessions' own filesystems (SESSION_DISK_DIR); below SESSION_DISK_MIN_FREE, creates answer 507 HOST_DISK_FULL",
        read.diskFreeBytes,
      );
    }
    collectDefaultMetrics({ register: this.registry, prefix: 'runner_controller_' });
  }

  // Set anew at every scrape from the usage cache (its five reads share one per session): a removed session's
  // series are gone from the next scrape on.
  #usageGauges(sessionUsage: () => Promise<SessionUsageRow[]>): void {
    for (const [field, name, help] of USAGE_GAUGES) {
      new Gauge({
        name,
        help,
        labelNames: ['session_id'],
        registers: [this.registry],
        async collect() {
          const current = await sessionUsage();
          this.reset();
          for (const { sessionId, usage } of current) {
            const value = usage?.[field];
            if (typeof value === 'number') this.set({ session_id: sessionId }, value);
          }
        },
      });
    }
  }

  observeProxy(kind: 'http' | 'ws', seconds: number, statusCode: number): void {
    this.proxySeconds.observe({ kind, status_code: String(statusCode) }, seconds);
  }

  #counter<L extends string = never>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  #histogram<L extends string = never>(name: string, help: string, buckets: number[], labelNames: L[] = []): Histogram<L> {
    return new Histogram<L>({ name, help, buckets, labelNames, registers: [this.registry] });
  }

  /** A gauge read when Prometheus scrapes, so it never goes stale; a null reading leaves it without a value. */
  #gauge(name: string, help: string, read: () => number | null | Promise<number | null>): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      async collect() {
        const value = await read();
        this.reset();
        if (value !== null) this.set(value);
      },
    });
  }
}

export const metricsRoutes: FastifyPluginAsync<{ metrics: ControllerMetrics }> = async (app, { metrics }) => {
  app.get(ControllerRoute.metrics, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
