import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import WebSocket, { type RawData } from 'ws';
import type { FastifyBaseLogger } from 'fastify';
import type { OutgoingHeaders } from './headers.js';

export interface WsUpstream {
  /** `ws+unix://<socket>:<path>` for an agent, `ws://<ip>:<port><path>` for a session port. */
  url: string;
  headers: OutgoingHeaders;
  /** The subprotocol the client will be answered with, offered to the upstream too. */
  protocol?: string;
  handshakeTimeoutMs: number;
}

/** An open, paused upstream socket with the extra headers of its 101 answer, or why there is none. */
export type UpstreamConnection =
  | { ok: true; socket: WebSocket; responseHeaders: string[] }
  | { ok: false; statusCode: number; closeCode: number; reason: string };

/** Close codes of the bridge itself; an upstream that answers HTTP instead of upgrading closes with 4000 + its status. */
export const ProxyCloseCode = {
  upstreamUnavailable: 4502,
  upstreamTimeout: 4504,
  upstreamLost: 1011,
  badUpstreamUrl: 4400,
} as const;

// Above this many bytes queued towards one side, the other side is paused until they are written.
const HIGH_WATER_BYTES = 1024 * 1024;
// A learner's app must not be able to make the controller hold an arbitrarily large frame.
const MAX_UPSTREAM_FRAME_BYTES = 16 * 1024 * 1024;
const MAX_REASON_BYTES = 123;
// The 101 answer's own headers; the client's server writes its own.
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-accept', 'sec-websocket-extensions', 'sec-websocket-protocol']);

/**
 * Opens the upstream WebSocket before the client is upgraded, so headers of the upstream's 101 (a terminal's id)
 * reach the client. The socket is paused: what the upstream sends first (a terminal's replay) waits for the client.
 */
export function connectWebSocket(upstream: WsUpstream): Promise<UpstreamConnection> {
  return new Promise((resolve) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(upstream.url, upstream.protocol ? [upstream.protocol] : [], {
        headers: upstream.headers as Record<string, string>,
        handshakeTimeout: upstream.handshakeTimeoutMs,
        perMessageDeflate: false,
        autoPong: false,
        maxPayload: MAX_UPSTREAM_FRAME_BYTES,
      });
    } catch (error) {
      // ws refuses a URL it cannot request (a fragment, a bad protocol): the client's path was bad input.
      resolve({ ok: false, statusCode: 400, closeCode: ProxyCloseCode.badUpstreamUrl, reason: truncateUtf8(`INVALID_PATH: ${(error as Error).message}`, MAX_REASON_BYTES) });
      return;
    }
    let settled = false;
    let responseHeaders: string[] = [];
    const fail = (statusCode: number, closeCode: number, reason: string) => {
      if (settled) return;
      settled = true;
      resolve({ ok: false, statusCode, closeCode, reason });
    };
    socket.on('upgrade', (res) => (responseHeaders = passedHeaders(res.headers)));
    socket.once('open', () => {
      socket.pause();
      settled = true;
      resolve({ ok: true, socket, responseHeaders });
    });
    socket.on('unexpected-response', (_req, res) => {
      const statusCode = res.statusCode ?? 502;
      void readReason(res).then((reason) => {
        fail(statusCode, 4000 + statusCode, reason);
        socket.terminate();
      });
    });
    // Stays attached after opening: errors of an open socket end in its 'close', which the bridge handles.
    socket.on('error', (error: Error & { code?: string }) => {
      if (/timed out/i.test(error.message) || error.code === 'ETIMEDOUT') {
        fail(504, ProxyCloseCode.upstreamTimeout, 'AGENT_TIMEOUT: upstream did not answer in time');
      } else fail(502, ProxyCloseCode.upstreamUnavailable, 'AGENT_UNAVAILABLE: upstream is not reachable');
    });
  });
}

/**
 * Joins an upgraded client to its open upstream: frames both ways with their text/binary kind, the upstream's
 * pings relayed to the client (so an agent's keepalive notices a dead client), close codes and reasons kept both
 * ways. `onEnd` runs once the client is gone.
 */
export function bridgeWebSocket(client: WebSocket, upstream: WebSocket, log: FastifyBaseLogger, onEnd: () => void): void {
  client.on('close', (code, reason) => {
    if (upstream.readyState === WebSocket.OPEN) {
      if (isSendable(code)) upstream.close(code, reason);
      else if (code === 1005) upstream.close();
      else upstream.close(1001, 'client went away');
    } else upstream.terminate();
    onEnd();
  });
  if (upstream.readyState !== WebSocket.OPEN) {
    client.close(ProxyCloseCode.upstreamLost, 'upstream connection lost');
    return;
  }
  relayFrames(client, upstream);
  relayFrames(upstream, client);
  upstream.on('ping', (data) => {
    if (client.readyState === WebSocket.OPEN) client.ping(data);
  });
  client.on('pong', (data) => {
    if (upstream.readyState === WebSocket.OPEN) upstream.pong(data);
  });
  upstream.on('error', (error) => log.debug({ err: error }, 'upstream websocket error'));
  upstream.on('close', (code, reason) => {
    if (client.readyState !== WebSocket.OPEN) return;
    client.resume();
    if (isSendable(code)) client.close(code, reason);
    else if (code === 1005) client.close();
    else client.close(ProxyCloseCode.upstreamLost, 'upstream connection lost');
  });
  upstream.resume();
}

/** Forwards every frame of `from` to `to`, pausing `from` while `to` has too much unwritten. */
function relayFrames(from: WebSocket, to: WebSocket): void {
  let queued = 0;
  const written = (size: number) => () => {
    queued -= size;
    if (queued < HIGH_WATER_BYTES && from.isPaused) from.resume();
  };
  from.on('message', (data: RawData, isBinary: boolean) => {
    if (to.readyState !== WebSocket.OPEN) return;
    const size = (data as Buffer).length;
    queued += size;
    to.send(data, { binary: isBinary }, written(size));
    if (queued >= HIGH_WATER_BYTES) from.pause();
  });
}

/** Codes one may put in a close frame (RFC 6455 §7.4); 1005 and 1006 only describe what happened. */
function isSendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** The upstream 101's headers worth passing on, as `Name: value` lines for the client's 101. */
function passedHeaders(headers: IncomingHttpHeaders): string[] {
  const lines: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HANDSHAKE_HEADERS.has(name)) continue;
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
  }
  return lines;
}

/** The `code: message` of an upstream's error body, or its status, cut to fit a close frame. */
async function readReason(res: IncomingMessage): Promise<string> {
  let reason = `HTTP ${res.statusCode}`;
  try {
    let text = '';
    for await (const chunk of res) {
      text += String(chunk);
      if (text.length > 4096) break;
    }
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') reason = typeof body.message === 'string' ? `${body.code}: ${body.message}` : body.code;
  } catch {
    // Not a JSON error body: the status says enough.
  }
  return truncateUtf8(reason, MAX_REASON_BYTES);
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = text.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}
