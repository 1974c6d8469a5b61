import { basename } from 'node:path';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { ControllerRoute } from '../../shared/routes.js';
import { DownloadQuery, GrantCapability, GrantRequest, GrantResponse, RevokeGrantsResponse } from '../../shared/schemas/grants.js';
import { SessionParams } from '../../shared/schemas/session.js';
import type { ResolveAgent } from '../proxy/agent-target.js';
import { Upstreams } from '../proxy/upstreams.js';
import type { Admission } from './grant-gate.js';
import type { Grants } from './grants.js';

export interface GrantsRoutesOptions {
  grants: Grants;
  resolveAgent: ResolveAgent;
  /** The grant a request was let in with, if any. */
  admission: (request: FastifyRequest) => Admission | undefined;
  /** Where browsers reach the controller; none: the grant request's own scheme and host. */
  publicUrl?: string;
  requestTimeoutMs?: number;
}

/** `POST|DELETE /sessions/{id}/grants` (the backend, with its token) and the file links' `GET /sessions/{id}/download`. */
export const grantsRoutes: FastifyPluginAsync<GrantsRoutesOptions> = async (fastify, options) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { grants, resolveAgent, admission } = options;
  const timeoutMs = options.requestTimeoutMs ?? 60_000;
  const upstreams = new Upstreams();
  app.addHook('onClose', async () => upstreams.close());

  app.post(
    ControllerRoute.sessionGrants,
    {
      schema: { params: SessionParams, body: GrantRequest, response: { 201: GrantResponse } },
      // Their own codes, before the schema's VALIDATION: a capability the runner has no grant for, a port no TCP has.
      preValidation: async (request) => {
        const body = request.body as { capability?: unknown; port?: unknown } | null;
        if (body && typeof body === 'object' && typeof body.capability === 'string' && !GrantCapability.safeParse(body.capability).success) {
          throw new AppError('GRANT_UNKNOWN_CAPABILITY', `unknown capability; one of ${GrantCapability.options.join(', ')}`);
        }
        if (body && typeof body === 'object' && Number.isInteger(body.port) && ((body.port as number) < 1 || (body.port as number) > 65_535)) {
          throw new AppError('GRANT_PORT_OUT_OF_RANGE', 'port must be 1..65535');
        }
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      await resolveAgent(id);
      const base = options.publicUrl ?? `${request.protocol}://${request.host}`;
      return reply.status(201).send(await grants.mint(id, request.body, base));
    },
  );

  app.delete(ControllerRoute.sessionGrants, { schema: { params: SessionParams, response: { 200: RevokeGrantsResponse } } }, async (request) => {
    const { id } = request.params;
    await resolveAgent(id);
    await grants.revoke(id);
    return { session_id: id, revoked: true as const };
  });

  // Reusable until it expires (a retry, a download manager's ranges); the agent reads the file as it always does,
  // and a folder as a .tar.gz.
  app.get(ControllerRoute.sessionDownload, { schema: { params: SessionParams, querystring: DownloadQuery } }, async (request, reply) => {
    const granted = admission(request);
    if (!granted || granted.claims.cap !== 'file' || !granted.claims.path) throw new AppError('GRANT_MISSING', 'this URL needs a file grant');
    const target = await resolveAgent(granted.sessionId);
    const path = granted.claims.path;
    const fetchFromAgent = (agentPath: string, accept: string) =>
      upstreams
        .agent(target.endpoint)
        .request({
          path: agentPath,
          method: 'GET',
          headers: { authorization: `Bearer ${target.token}`, accept },
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        })
        .catch((error: unknown) => {
          throw new AppError('AGENT_UNAVAILABLE', `the agent of session ${granted.sessionId} is not reachable`, undefined, { cause: error });
        });
    let upstream = await fetchFromAgent(`/files${path.split('/').map(encodeURIComponent).join('/')}`, 'application/octet-stream');
    let name = basename(path);
    let type = 'application/octet-stream';
    if (upstream.statusCode === 409) {
      // A folder goes as one .tar.gz, packed by the agent as the learner.
      const error = await upstream.body.text();
      if (!error.includes('"IS_A_DIRECTORY"')) return reply.status(409).type('application/json').send(error);
      upstream = await fetchFromAgent(`/archive?path=${encodeURIComponent(path)}`, 'application/gzip');
      name = `${name || 'workspace'}.tar.gz`;
      type = 'application/gzip';
    }
    reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
    if (upstream.statusCode !== 200) {
      // The agent's error body, unchanged: a client sees one shape whichever hop failed.
      return reply.status(upstream.statusCode).type('application/json').send(await upstream.body.text());
    }
    reply
      .header('content-disposition', `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`)
      .header('content-type', type);
    if (upstream.headers['content-length'] !== undefined) reply.header('content-length', upstream.headers['content-length']);
    return reply.send(upstream.body);
  });
};
