import type { Socket } from 'node:net';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { AppError } from '../../shared/errors.js';
import { ControllerRoute } from '../../shared/routes.js';
import type { AgentTarget, ResolveAgent } from '../proxy/agent-target.js';
import { upstreamHeaders, type OutgoingHeaders } from '../proxy/headers.js';
import { forwardHttp } from '../proxy/http-proxy.js';
import { Upstreams } from '../proxy/upstreams.js';
import { bridgeWebSocket, connectWebSocket, type UpstreamConnection } from '../proxy/ws-proxy.js';
import type { Admission } from './grant-gate.js';
import { isLocalPath, type Grants } from './grants.js';
import { PREVIEW_ROUTE_PREFIX, previewTargetOf, type PreviewTarget } from './preview-host.js';

export interface PreviewRoutesOptions {
  grants: Grants;
  resolveAgent: ResolveAgent;
  admission: (request: FastifyRequest) => Admission | undefined;
  cookieName: string;
  /** Over https the cookie is `Secure; SameSite=None; Partitioned`, so it works in a cross-site iframe. */
  https: boolean;
  /** The cookie may be Secure over plain http too: browsers count `localhost` names as secure. */
  secureContext: boolean;
  requestTimeoutMs?: number;
}

const BODY_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * Serves each preview origin `{port}-{session}.{PREVIEW_DOMAIN}`: `/__runner/auth` turns a preview grant into the
 * origin's cookie, everything else goes to that one port of that one session, at the origin's root, unrewritten.
 */
export const previewRoutes: FastifyPluginAsync<PreviewRoutesOptions> = async (app, options) => {
  const { grants, resolveAgent, admission, cookieName } = options;
  const timeoutMs = options.requestTimeoutMs ?? 60_000;
  const upstreams = new Upstreams();
  const opened = new WeakMap<FastifyRequest, { connection: UpstreamConnection; target: PreviewTarget }>();
  const tracked = new WeakSet<Socket>();
  app.addHook('onClose', async () => upstreams.close());

  // Bodies go to the app as they came, like the ports proxy does.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  /** The request's preview and grant; only requests the gate admitted on a preview origin get here. */
  const previewOf = (request: FastifyRequest): { target: PreviewTarget; granted: Admission } => {
    const target = previewTargetOf(request.raw);
    const granted = admission(request);
    if (!target || !granted) throw new AppError('ROUTE_NOT_FOUND', `Route ${request.method}:${request.url} not found`);
    return { target, granted };
  };

  const signIn = async (request: FastifyRequest, reply: FastifyReply, granted: Admission, target: PreviewTarget) => {
    const next = new URLSearchParams(target.url.split('?')[1] ?? '').get('next') ?? '/';
    if (!isLocalPath(next)) throw new AppError('VALIDATION', 'next must be a path on this origin');
    const cookie = await grants.previewCookie(granted.claims);
    const attributes = options.secureContext ? { secure: true, sameSite: 'none' as const, partitioned: true } : { sameSite: 'lax' as const };
    return reply
      .status(303)
      .setCookie(cookieName, cookie.value, { path: '/', httpOnly: true, maxAge: cookie.maxAgeSeconds, ...attributes })
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer')
      .header('location', next)
      .send();
  };

  /** The browser's headers as the app gets them: without the runner's cookie and the client's own X-Forwarded-*. */
  const appHeaders = (request: FastifyRequest, websocket: boolean): OutgoingHeaders => {
    const headers = upstreamHeaders(request.headers, websocket);
    for (const name of Object.keys(headers)) if (name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip') delete headers[name];
    delete headers.cookie;
    const cookies = withoutCookie(request.headers.cookie, cookieName);
    if (cookies) headers.cookie = cookies;
    headers['x-forwarded-for'] = request.ip;
    headers['x-forwarded-host'] = request.headers.host ?? '';
    headers['x-forwarded-proto'] = options.https ? 'https' : 'http';
    return headers;
  };

  const appOrigin = (target: AgentTarget, port: number) => (target.address.includes(':') ? `[${target.address}]:${port}` : `${target.address}:${port}`);

  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    const { target, granted } = previewOf(request);
    const path = target.url.split('?', 1)[0];
    if (path === ControllerRoute.previewAuth) return signIn(request, reply, granted, target);
    const agent = await resolveAgent(target.sessionId);
    const socket = request.raw.socket;
    // Once per connection, however many requests it carries.
    if (!tracked.has(socket)) {
      tracked.add(socket);
      socket.once('close', grants.track(target.sessionId, () => socket.destroy()));
    }
    return forwardHttp(request, reply, {
      dispatcher: upstreams.ports,
      origin: `http://${appOrigin(agent, target.port)}`,
      path: target.url,
      headers: appHeaders(request, false),
      headersTimeoutMs: timeoutMs,
      bodyTimeoutMs: timeoutMs,
      name: `port ${target.port} of session ${target.sessionId}`,
      details: { port: target.port },
    });
  };

  // Connected before the browser is upgraded, as the ports proxy does: a closed port is a refused upgrade.
  const prepareUpgrade = async (request: FastifyRequest) => {
    if (!request.ws) return;
    const { target } = previewOf(request);
    const agent = await resolveAgent(target.sessionId);
    const connection = await connectWebSocket({
      url: `ws://${appOrigin(agent, target.port)}${target.url}`,
      headers: appHeaders(request, true),
      protocol: request.headers['sec-websocket-protocol']?.split(',')[0]?.trim() || undefined,
      handshakeTimeoutMs: timeoutMs,
    });
    opened.set(request, { connection, target });
    if (connection.ok) request.raw.socket.once('close', () => opened.get(request) && connection.socket.terminate());
  };

  const bridge = (client: WebSocket, request: FastifyRequest) => {
    const { connection } = opened.get(request)!;
    opened.delete(request);
    if (!connection.ok) return void client.close(connection.closeCode, connection.reason);
    bridgeWebSocket(client, connection.socket, request.log, () => {});
  };

  // The origin's root too: the router ignores a trailing slash, so `/` arrives as the bare prefix.
  for (const url of [PREVIEW_ROUTE_PREFIX, `${PREVIEW_ROUTE_PREFIX}/*`]) {
    app.route({ method: 'GET', url, preHandler: prepareUpgrade, handler: handle, wsHandler: bridge });
    app.route({ method: [...BODY_METHODS], url, handler: handle });
  }
};

/** The Cookie header without one cookie, every other pair exactly as the browser sent it. */
function withoutCookie(header: string | undefined, name: string): string {
  if (!header) return '';
  return header
    .split(';')
    .filter((pair) => pair.split('=', 1)[0]!.trim() !== name)
    .map((pair) => pair.trim())
    .filter(Boolean)
    .join('; ');
}
