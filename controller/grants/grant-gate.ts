import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { AppError } from '../../shared/errors.js';
import { ControllerRoute } from '../../shared/routes.js';
import { SessionId } from '../../shared/schemas/session.js';
import type { GrantClaims } from './grant-token.js';
import type { Grants } from './grants.js';
import { previewTargetOf } from './preview-host.js';

/** What a request was let in with: a checked grant of one session. */
export interface Admission {
  sessionId: string;
  claims: GrantClaims;
}

/** Close code of a socket whose grant was revoked (or whose session went away). */
export const GRANT_REVOKED_CLOSE = 4401;

const TERMINAL_WS = /^\/sessions\/([^/?]+)\/terminal\/ws$/;
const DOWNLOAD = /^\/sessions\/([^/?]+)\/download$/;

/** The cookie a preview sign-in sets on its origin (`__Host-` over https: host-only, Secure, path /). */
export function previewCookieName(https: boolean): string {
  return https ? '__Host-runner_preview' : 'runner_preview';
}

/**
 * Checks the browser grants before the bearer check runs: a ticketed terminal upgrade, a file link, every request on
 * a preview origin. A request with a good grant is admitted (the bearer check lets exactly these through); a bad
 * one is refused with why; any other request is left to the bearer check. Needs @fastify/cookie registered before.
 */
export function registerGrantGate(app: FastifyInstance, grants: Grants, cookieName: string): (request: FastifyRequest) => Admission | undefined {
  const admitted = new WeakMap<IncomingMessage, Admission>();

  app.addHook('onRequest', async (request) => {
    const raw = request.raw;
    const preview = previewTargetOf(raw);
    if (preview === null) throw new AppError('PREVIEW_NOT_FOUND', 'no preview has this name');
    if (preview) {
      const { path, query } = splitUrl(preview.url);
      const expected = { sessionId: preview.sessionId, port: preview.port };
      let claims: GrantClaims;
      if (path === ControllerRoute.previewAuth) {
        claims = await grants.check(query.get('ticket') ?? undefined, { ...expected, kind: 'preview' });
        grants.consume(claims);
      } else {
        const cookie = request.cookies[cookieName];
        claims = await grants.check(cookie, { ...expected, kind: 'preview_cookie' });
      }
      admitted.set(raw, { sessionId: preview.sessionId, claims });
      return;
    }

    const { path, query } = splitUrl(request.url);
    const terminal = TERMINAL_WS.exec(path);
    const ticket = query.get('ticket');
    if (terminal && ticket !== null && request.method === 'GET' && isUpgrade(raw)) {
      const sessionId = sessionIdOf(terminal[1]!);
      grants.checkOrigin(request.headers.origin, request.headers.host);
      const claims = await grants.check(ticket, { sessionId, kind: 'terminal' });
      if (claims.tid !== undefined && query.get('id') !== claims.tid) throw new AppError('GRANT_WRONG_TERMINAL', 'the ticket is for another terminal');
      grants.consume(claims);
      // The agent gets the terminal's own parameters only: the ticket stays with the controller.
      query.delete('ticket');
      raw.url = `${path}${query.size > 0 ? `?${query}` : ''}`;
      admitted.set(raw, { sessionId, claims });
      return;
    }

    const download = DOWNLOAD.exec(path);
    if (download && request.method === 'GET' && query.has('token')) {
      const sessionId = sessionIdOf(download[1]!);
      const claims = await grants.check(query.get('token') ?? undefined, { sessionId, kind: 'file' });
      admitted.set(raw, { sessionId, claims });
    }
  });

  // A socket opened with a grant lives as long as the session, unless the grant is revoked first.
  app.websocketServer?.on('connection', (socket: WebSocket, raw: IncomingMessage) => {
    const granted = admitted.get(raw);
    if (!granted) return;
    const untrack = grants.track(granted.sessionId, () => socket.close(GRANT_REVOKED_CLOSE, 'GRANT_REVOKED: the grant was revoked'));
    socket.once('close', untrack);
  });

  return (request) => admitted.get(request.raw);
}

function splitUrl(url: string): { path: string; query: URLSearchParams } {
  const mark = url.indexOf('?');
  return mark < 0 ? { path: url, query: new URLSearchParams() } : { path: url.slice(0, mark), query: new URLSearchParams(url.slice(mark + 1)) };
}

function isUpgrade(raw: IncomingMessage): boolean {
  return (raw.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

// A URL naming no valid session id names no session a grant could be for.
function sessionIdOf(segment: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new AppError('GRANT_WRONG_SESSION', 'the grant is for another session');
  }
  if (!SessionId.safeParse(id).success) throw new AppError('GRANT_WRONG_SESSION', 'the grant is for another session');
  return id;
}
