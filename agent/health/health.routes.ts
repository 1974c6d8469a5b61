import type { FastifyPluginAsync } from 'fastify';
import { AgentRoute } from '../../shared/routes.js';
import type { AgentHealth } from '../../shared/schemas/health.js';
import type { RouteDeps } from '../app.js';

const startedAt = Date.now();

export const healthRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  app.get(AgentRoute.health, async (): Promise<AgentHealth> => {
    const daemon = deps.daemon.health();
    const uptime_seconds = (Date.now() - startedAt) / 1000;
    // "starting" until the daemon first answers; "degraded" when it stopped answering after that.
    const status = daemon.ready ? 'healthy' : daemon.version === null && daemon.restarts === 0 ? 'starting' : 'degraded';
    return { status, uptime_seconds, daemon, terminals: deps.terminals.count() };
  });
};
