import type { FastifyRequest } from 'fastify';
import { tokenOfProtocols } from '../../shared/websocket-auth.js';

/**
 * The API token a console page offers as a WebSocket subprotocol (browsers cannot set `Authorization` on one).
 * Only an upgrade whose `Origin` is the controller's own is believed: another site's page has no token to offer,
 * and the token never appears in a URL, a log line or a cookie.
 */
export function consoleWebSocketToken(request: FastifyRequest): string | undefined {
  if (request.headers.upgrade?.toLowerCase() !== 'websocket') return undefined;
  const { origin, host } = request.headers;
  if (!origin || !host) return undefined;
  try {
    if (new URL(origin).host !== host) return undefined;
  } catch {
    return undefined;
  }
  return tokenOfProtocols(request.headers['sec-websocket-protocol']);
}
