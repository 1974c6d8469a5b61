import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ControllerRoute } from '../../shared/routes.js';
import {
  CreateSessionRequest,
  DeleteSessionResponse,
  ExtendSessionRequest,
  SessionInfo,
  SessionList,
  SessionParams,
} from '../../shared/schemas/session.js';
import type { SessionManager } from './session-manager.js';

export const sessionsRoutes: FastifyPluginAsync<{ sessions: SessionManager }> = async (fastify, { sessions }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.post(ControllerRoute.sessions, { schema: { body: CreateSessionRequest, response: { 201: SessionInfo } } }, async (request, reply) => {
    const session = await sessions.create(request.body);
    return reply.status(201).send(session);
  });

  app.get(ControllerRoute.sessions, { schema: { response: { 200: SessionList } } }, async () => ({ sessions: await sessions.list() }));

  app.get(ControllerRoute.session, { schema: { params: SessionParams, response: { 200: SessionInfo } } }, async (request) =>
    sessions.get(request.params.id),
  );

  app.delete(ControllerRoute.session, { schema: { params: SessionParams, response: { 200: DeleteSessionResponse } } }, async (request) => ({
    session_id: request.params.id,
    status: 'deleted' as const,
    found: await sessions.delete(request.params.id),
  }));

  app.post(
    ControllerRoute.sessionExtend,
    { schema: { params: SessionParams, body: ExtendSessionRequest, response: { 200: SessionInfo } } },
    async (request) => sessions.extend(request.params.id, request.body.ttl_seconds),
  );
};
