import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ControllerRoute } from '../../shared/routes.js';
import {
  CreateSessionRequest,
  DeleteSessionQuery,
  DeleteSessionResponse,
  ExtendSessionRequest,
  SessionInfo,
  SessionList,
  SessionParams,
} from '../../shared/schemas/session.js';
import type { SessionManager } from './session-manager.js';
import type { UsageCache } from './usage-cache.js';
import { resolveTemplate } from './workspace-template.js';

export const sessionsRoutes: FastifyPluginAsync<{ sessions: SessionManager; usage: UsageCache; templatesDir?: string }> = async (
  fastify,
  { sessions, usage, templatesDir },
) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // A look-up shows what a running session uses now (from a cache of a few seconds); any other state uses nothing.
  const withUsage = async (info: SessionInfo): Promise<SessionInfo> => ({
    ...info,
    usage: info.status === 'running' ? await usage.of({ sessionId: info.session_id, containerName: info.container_name }) : null,
  });

  app.post(ControllerRoute.sessions, { schema: { body: CreateSessionRequest, response: { 201: SessionInfo } } }, async (request, reply) => {
    const template = request.body.workspace?.template;
    const templateDir = template === undefined ? undefined : await resolveTemplate(templatesDir, [template]);
    const session = await sessions.create(request.body, templateDir);
    return reply.status(201).send(session);
  });

  app.get(ControllerRoute.sessions, { schema: { response: { 200: SessionList } } }, async () => ({
    sessions: await Promise.all((await sessions.list()).map(withUsage)),
  }));

  app.get(ControllerRoute.session, { schema: { params: SessionParams, response: { 200: SessionInfo } } }, async (request) =>
    withUsage(await sessions.get(request.params.id)),
  );

  app.delete(
    ControllerRoute.session,
    { schema: { params: SessionParams, querystring: DeleteSessionQuery, response: { 200: DeleteSessionResponse } } },
    async (request) => {
      const { found, keptUntil } = await sessions.delete(request.params.id, request.query.keep_workspace);
      return {
        session_id: request.params.id,
        status: 'deleted' as const,
        found,
        ...(keptUntil ? { workspace_kept_until: keptUntil.toISOString() } : {}),
      };
    },
  );

  app.post(
    ControllerRoute.sessionExtend,
    { schema: { params: SessionParams, body: ExtendSessionRequest, response: { 200: SessionInfo } } },
    async (request) => sessions.extend(request.params.id, request.body.ttl_seconds),
  );
};
