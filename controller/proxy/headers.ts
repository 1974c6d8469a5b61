import type { IncomingHttpHeaders } from 'node:http';

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection; undici also refuses most of them.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

// Never forwarded upstream: host is the upstream's, expect is answered by Node, authorization is the controller's.
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'expect', 'authorization']);

// A WebSocket handshake's own headers are made afresh by the upstream client.
const NOT_FORWARDED_WS = new Set([
  ...NOT_FORWARDED,
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'content-length',
]);

export type OutgoingHeaders = Record<string, string | string[]>;

/** The client's headers as sent upstream: hop-by-hop ones and the client's token removed. */
export function upstreamHeaders(incoming: IncomingHttpHeaders, websocket = false): OutgoingHeaders {
  const skip = websocket ? NOT_FORWARDED_WS : NOT_FORWARDED;
  const out: OutgoingHeaders = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value !== undefined && !skip.has(name)) out[name] = value;
  }
  // Headers a client names in Connection are hop-by-hop too.
  const connection = incoming.connection;
  if (connection && connection !== 'keep-alive' && connection !== 'close') {
    for (const name of connection.split(',')) delete out[name.trim().toLowerCase()];
  }
  return out;
}

/** An upstream response's end-to-end headers, for the client's response. */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHeaders {
  const out: OutgoingHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}
