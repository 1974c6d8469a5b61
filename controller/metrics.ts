import type { FastifyPluginAsync } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ControllerRoute } from '../shared/routes.js';

/** How many warm pool sessions there are, and how many of them are ready. */
export interface PoolCounts {
  members: number;
  ready: number;
}

/** The controller's Prometheus metrics, in a registry of its own so that several apps (tests) never collide. */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly sessionsCreated = new Counter({
    name: 'runner_sessions_created_total',
    help: 'Sessions created and ready',
    registers: [this.registry],
  });
  readonly sessionsFailed = new Counter({
    name: 'runner_sessions_failed_total',
    help: 'Session creations that failed (everything they made was removed)',
    registers: [this.registry],
  });
  readonly sessionsExpired = new Counter({
    name: 'runner_sessions_expired_total',
    help: 'Sessions removed because their time ran out',
    registers: [this.registry],
  });
  readonly sessionsDeleted = new Counter({
    name: 'runner_sessions_deleted_total',
    help: 'Sessions removed by DELETE /sessions/{id}',
    registers: [this.registry],
  });
  readonly createSeconds = new Histogram({
    name: 'runner_session_create_seconds',
    help: 'Time from POST /sessions to the agent healthy with its inner daemon ready',
    buckets: [0.5, 1, 1.5, 2, 3, 5, 10, 20, 40, 90],
    registers: [this.registry],
  });
  readonly proxySeconds = new Histogram<'kind' | 'status_code'>({
    name: 'runner_proxy_request_seconds',
    help: 'Requests proxied to agents: time to the response head (http) or the whole connection (ws)',
    labelNames: ['kind', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });
  readonly poolClaims = new Counter({
    name: 'runner_warm_pool_claims_total',
    help: 'POST /sessions served by claiming a warm pool session',
    registers: [this.registry],
  });
  readonly poolMisses = new Counter({
    name: 'runner_warm_pool_misses_total',
    help: 'POST /sessions that found no ready warm session and started one cold (pool enabled)',
    registers: [this.registry],
  });
  readonly poolFailures = new Counter({
    name: 'runner_warm_pool_failures_total',
    help: 'Warm pool sessions that failed to start or to be claimed (each was removed)',
    registers: [this.registry],
  });
  readonly poolClaimSeconds = new Histogram({
    name: 'runner_warm_pool_claim_seconds',
    help: 'Time to hand a ready warm session to a new session id (new token, state, container name)',
    buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly errors = new Counter<'code'>({
    name: 'runner_errors_total',
    help: 'Error responses of the controller by code',
    labelNames: ['code'],
    registers: [this.registry],
  });

  constructor(activeSessions: () => number, pool: () => PoolCounts = () => ({ members: 0, ready: 0 })) {
    new Gauge({
      name: 'runner_sessions_active',
      help: 'Sessions that exist now (being created or running)',
      registers: [this.registry],
      collect() {
        this.set(activeSessions());
      },
    });
    new Gauge({
      name: 'runner_warm_pool_size',
      help: 'Warm pool sessions started ahead and not claimed (starting or ready)',
      registers: [this.registry],
      collect() {
        this.set(pool().members);
      },
    });
    new Gauge({
      name: 'runner_warm_pool_ready',
      help: 'Warm pool sessions ready to be claimed',
      registers: [this.registry],
      collect() {
        this.set(pool().ready);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'runner_controller_' });
  }

  observeProxy(kind: 'http' | 'ws', seconds: number, statusCode: number): void {
    this.proxySeconds.observe({ kind, status_code: String(statusCode) }, seconds);
  }
}

export const metricsRoutes: FastifyPluginAsync<{ metrics: ControllerMetrics }> = async (app, { metrics }) => {
  app.get(ControllerRoute.metrics, async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
