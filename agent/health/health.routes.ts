import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AgentRoute } from '../../shared/routes.js';
import { AgentHealthQuery, type AgentHealth } from '../../shared/schemas/health.js';
import type { RouteDeps } from '../app.js';

const startedAt = Date.now();

export const healthRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  app.withTypeProvider<ZodTypeProvider>().get(AgentRoute.health, { schema: { querystring: AgentHealthQuery } }, async (request): Promise<AgentHealth> => {
    // Answered the moment the daemon is ready, or when the wait is over: one request instead of a poll every 100 ms.
    const { wait_ready_ms } = request.query;
    if (wait_ready_ms > 0) await deps.daemon.waitReady(wait_ready_ms).catch(() => {});
    const daemon = deps.daemon.health();
    const uptime_seconds = (Date.now() - startedAt) / 1000;
    // "starting" until the daemon first answers; "degraded" when it stopped answering after that.
    const status = daemon.ready ? 'healthy' : daemon.version === null && daemon.restarts === 0 ? 'starting' : 'degraded';
    return { status, uptime_seconds, daemon, terminals: deps.terminals.count() };
  });
};
