import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ControllerRoute } from '../../shared/routes.js';
import { ControllerHealth } from '../../shared/schemas/session.js';
import type { SessionRuntime } from '../runtime/session-runtime.js';
import type { SessionManager } from '../sessions/session-manager.js';

export const healthRoutes: FastifyPluginAsync<{ runtime: SessionRuntime; sessions: SessionManager }> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get(ControllerRoute.health, { schema: { response: { 200: ControllerHealth, 503: ControllerHealth } } }, async (_request, reply) => {
    const docker_available = await deps.runtime.ping();
    // Without Docker no session can be created or removed: a load balancer should take this controller out.
    return reply.status(docker_available ? 200 : 503).send({
      status: docker_available ? 'healthy' : 'unhealthy',
      active_sessions: deps.sessions.count(),
      docker_available,
    });
  });
};
