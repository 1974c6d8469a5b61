import type { IncomingMessage } from 'node:http';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { WebSocket } from 'ws';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute, ControllerRoute, sessionPath } from '../../shared/routes.js';
import { SESSION_ROUTES, type SessionRouteSpec } from '../../shared/session-api.js';
import { SessionParams } from '../../shared/schemas/session.js';
import { agentWebSocketUrl, hostPort, type AgentTarget, type ResolveAgent } from './agent-target.js';
import { upstreamHeaders } from './headers.js';
import { forwardHttp } from './http-proxy.js';
import { Upstreams } from './upstreams.js';
import { bridgeWebSocket, connectWebSocket, type UpstreamConnection, type WsUpstream } from './ws-proxy.js';

export interface ProxyOptions {
  resolveAgent: ResolveAgent;
  /** How long an upstream may take to start answering, and the longest silence allowed inside a streamed body. */
  requestTimeoutMs?: number;
  /** Agent routes that answer only once their work is done (exec, build, run, stop) may take this long. */
  longRequestTimeoutMs?: number;
  /** Called once per proxied request or WebSocket session with its duration and status (101 for a bridged WS). */
  observe?: (kind: 'http' | 'ws', seconds: number, statusCode: number) => void;
}

// Agent routes whose answer waits for the work itself; their streaming variants answer at once.
const LONG_AGENT_ROUTES = new Set<string>([AgentRoute.exec, AgentRoute.build, AgentRoute.run, AgentRoute.stop, AgentRoute.archive]);
const BODY_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const PORTS_SEGMENT = '/ports/';

const PortParams = z.object({
  id: z.string(),
  port: z
    .string()
    .regex(/^\d{1,5}$/, 'port must be a number')
    .transform(Number)
    .pipe(z.number().int().min(1, 'port must be 1..65535').max(65535, 'port must be 1..65535')),
});

/**
 * Serves everything under `/sessions/:id/` the host app does not: the session agent's API with the prefix stripped
 * (HTTP and WebSocket), and `/sessions/:id/ports/:port/…`, a server listening inside the session.
 */
export const proxyRoutes: FastifyPluginAsync<ProxyOptions> = async (scope, options) => {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { resolveAgent, observe } = options;
  const timeoutMs = options.requestTimeoutMs ?? 60_000;
  const longTimeoutMs = Math.max(options.longRequestTimeoutMs ?? 30 * 60_000, timeoutMs);
  // Where the agent path starts in request.url: after this plugin's prefix and `/sessions/`.
  const sessionsPrefixLength = app.prefix.length + ControllerRoute.sessions.length + 1;
  const upstreams = new Upstreams();
  const wsUpstreams = new WeakMap<FastifyRequest, { connection: UpstreamConnection; startedAt: number }>();
  app.addHook('onClose', async () => upstreams.close());

  // Bodies go to the upstream as the raw stream, unparsed and unlimited here: the upstream enforces its own limit.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  app.setValidatorCompiler(validatorCompiler);

  // A request target has no fragment (RFC 9110); passed on, it would be no path an upstream can be asked for.
  app.addHook('onRequest', async (request) => {
    if (request.url.includes('#')) throw new AppError('INVALID_PATH', 'a request path cannot contain a fragment (#)');
  });

  if (observe) {
    app.addHook('onResponse', async (request, reply) => {
      // A bridged WebSocket reports when it ends; its upgrade socket closing is not a response.
      if (request.ws && reply.statusCode < 400) return;
      observe(request.ws ? 'ws' : 'http', reply.elapsedTime / 1000, reply.statusCode);
    });
  }

  /** `/files?path=x` out of `/sessions/abc/files?path=x`, spelled exactly as the client did. */
  const agentPath = (url: string): string => {
    const slash = url.indexOf('/', sessionsPrefixLength);
    return slash === -1 ? '/' : url.slice(slash);
  };

  /** `/x?y` out of `/sessions/abc/ports/8080/x?y`; `/?y` for `/sessions/abc/ports/8080?y`. */
  const portPath = (url: string): string => {
    const rest = agentPath(url);
    const slash = rest.indexOf('/', PORTS_SEGMENT.length);
    if (slash !== -1) return rest.slice(slash);
    const query = rest.indexOf('?');
    return query === -1 ? '/' : `/${rest.slice(query)}`;
  };

  const agentName = (id: string) => `the agent of session ${id}`;
  const portName = (id: string, port: number) => `port ${port} of session ${id}`;
  const portOrigin = (target: AgentTarget, port: number) => hostPort(target.address, port);

  const forwardToAgent = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    const { id } = request.params;
    const target = await resolveAgent(id);
    const path = agentPath(request.url);
    const headers = upstreamHeaders(request.headers);
    headers.authorization = `Bearer ${target.token}`;
    return forwardHttp(request, reply, {
      dispatcher: upstreams.agent(target.endpoint),
      path,
      headers,
      headersTimeoutMs: request.method === 'POST' && isLongAgentRoute(path) ? longTimeoutMs : timeoutMs,
      bodyTimeoutMs: timeoutMs,
      name: agentName(id),
    });
  };

  const forwardToPort = async (request: FastifyRequest<{ Params: z.infer<typeof PortParams> }>, reply: FastifyReply) => {
    const { id, port } = request.params;
    const target = await resolveAgent(id);
    const headers = upstreamHeaders(request.headers);
    addForwardedHeaders(headers, request, `${app.prefix}${sessionPath(id)}${PORTS_SEGMENT}${port}`);
    return forwardHttp(request, reply, {
      dispatcher: upstreams.ports,
      origin: `http://${portOrigin(target, port)}`,
      path: portPath(request.url),
      headers,
      headersTimeoutMs: timeoutMs,
      bodyTimeoutMs: timeoutMs,
      name: portName(id, port),
      details: { port },
    });
  };

  // The upstream is connected before the client is upgraded: an unknown session is a plain 404 like over HTTP,
  // and the upstream's 101 headers (a terminal's id) are passed on in the client's 101.
  const connectBeforeUpgrade = async (request: FastifyRequest, upstream: WsUpstream) => {
    const startedAt = performance.now();
    const connection = await connectWebSocket(upstream);
    const entry = { connection, startedAt };
    wsUpstreams.set(request, entry);
    if (!connection.ok) return;
    if (connection.responseHeaders.length > 0) upgradeHeaders.set(request.raw, connection.responseHeaders);
    // A client gone before its upgrade completes never reaches the bridge: its upstream must not stay open.
    request.raw.socket.once('close', () => {
      if (wsUpstreams.get(request) === entry) connection.socket.terminate();
    });
  };
  const upgradeHeaders = new WeakMap<IncomingMessage, string[]>();
  app.websocketServer?.on('headers', (headers: string[], raw: IncomingMessage) => {
    const extra = upgradeHeaders.get(raw);
    if (extra) headers.push(...extra);
  });

  const prepareAgentUpgrade = async (request: FastifyRequest<{ Params: { id: string } }>) => {
    if (!request.ws) return;
    const target = await resolveAgent(request.params.id);
    await connectBeforeUpgrade(request, {
      url: agentWebSocketUrl(target.endpoint, agentPath(request.url)),
      headers: { authorization: `Bearer ${target.token}` },
      handshakeTimeoutMs: timeoutMs,
    });
  };

  const preparePortUpgrade = async (request: FastifyRequest<{ Params: z.infer<typeof PortParams> }>) => {
    if (!request.ws) return;
    const { id, port } = request.params;
    const target = await resolveAgent(id);
    await connectBeforeUpgrade(request, {
      url: `ws://${portOrigin(target, port)}${portPath(request.url)}`,
      headers: upstreamHeaders(request.headers, true),
      protocol: firstProtocol(request.headers['sec-websocket-protocol']),
      handshakeTimeoutMs: timeoutMs,
    });
  };

  // A refused upstream still upgrades the client, then closes it with a code and reason: browsers see no HTTP status.
  const bridge = (client: WebSocket, request: FastifyRequest) => {
    const { connection, startedAt } = wsUpstreams.get(request)!;
    wsUpstreams.delete(request);
    const seconds = () => (performance.now() - startedAt) / 1000;
    if (!connection.ok) {
      client.close(connection.closeCode, connection.reason);
      observe?.('ws', seconds(), connection.statusCode);
      return;
    }
    bridgeWebSocket(client, connection.socket, request.log, () => observe?.('ws', seconds(), 101));
  };

  // Each session route is served with its shared schemas, for the OpenAPI document: the agent validates the request.
  for (const spec of SESSION_ROUTES) {
    const url = `${ControllerRoute.session}${spec.path}`;
    const websocket = spec.method === 'GET' ? { preHandler: prepareAgentUpgrade, wsHandler: bridge } : {};
    app.route({ method: spec.method, url, schema: sessionRouteSchema(spec), config: { sessionRoute: spec }, ...PASS_THROUGH, handler: forwardToAgent, ...websocket });
  }
  // Anything else below a session still reaches its agent, which answers ROUTE_NOT_FOUND for what it does not serve.
  const agentUrl = `${ControllerRoute.sessionProxyPrefix}*`;
  const hidden = { schema: { hide: true } };
  app.route({ method: 'GET', url: agentUrl, ...hidden, preHandler: prepareAgentUpgrade, handler: forwardToAgent, wsHandler: bridge });
  app.route({ method: [...BODY_METHODS], url: agentUrl, ...hidden, handler: forwardToAgent });

  for (const url of [`${ControllerRoute.sessionProxyPrefix}ports/:port`, `${ControllerRoute.sessionProxyPrefix}ports/:port/*`]) {
    const schema = { params: PortParams };
    app.route({ method: 'GET', url, schema, preHandler: preparePortUpgrade, handler: forwardToPort, wsHandler: bridge });
    app.route({ method: [...BODY_METHODS], url, schema, handler: forwardToPort });
  }
};

/** The controller passes requests and answers through unchanged: the agent validates and serialises them. */
const PASS_THROUGH = {
  validatorCompiler: () => (data: unknown) => ({ value: data }),
  serializerCompiler: () => (data: unknown) => JSON.stringify(data),
};

/** A session route's shared schemas, with the session's id and a wildcard's path as parameters. */
function sessionRouteSchema(spec: SessionRouteSpec): FastifySchema {
  const path = spec.path.endsWith('*') ? { path: z.string().describe('a path inside the workspace, e.g. `src/app.py`') } : {};
  return {
    params: z.object({ ...SessionParams.shape, ...spec.params?.shape, ...path }),
    ...(spec.querystring ? { querystring: spec.querystring } : {}),
    ...(spec.body ? { body: spec.body } : {}),
    ...(spec.responses ? { response: spec.responses } : {}),
  };
}

/** The subprotocol the client's server picks by default: the first one offered. */
function firstProtocol(header: string | undefined): string | undefined {
  return header?.split(',')[0]?.trim() || undefined;
}

function isLongAgentRoute(path: string): boolean {
  const query = path.indexOf('?');
  const route = query === -1 ? path : path.slice(0, query);
  // The agent ignores a trailing slash, so `/exec/` is `/exec`.
  return LONG_AGENT_ROUTES.has(route.endsWith('/') ? route.slice(0, -1) : route);
}

/** Tells an app inside the session where it is published, since it only sees the proxy's request. */
function addForwardedHeaders(headers: Record<string, string | string[]>, request: FastifyRequest, prefix: string): void {
  headers['x-forwarded-for'] = request.ip;
  headers['x-forwarded-host'] = request.host;
  headers['x-forwarded-proto'] = request.protocol;
  headers['x-forwarded-prefix'] = prefix;
}
