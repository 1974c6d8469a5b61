import type { IncomingMessage } from 'node:http';
import WebSocket, { type RawData } from 'ws';
import type { FastifyBaseLogger } from 'fastify';
import type { OutgoingHeaders } from './headers.js';

export interface WsUpstream {
  /** `ws+unix://<socket>:<path>` for an agent, `ws://<ip>:<port><path>` for a session port. */
  url: string;
  headers: OutgoingHeaders;
  /** The subprotocol already agreed with the client, offered to the upstream too. */
  protocol?: string;
  handshakeTimeoutMs: number;
}

/** Close codes of the bridge itself; an upstream that answers HTTP instead of upgrading closes with 4000 + its status. */
export const ProxyCloseCode = {
  upstreamUnavailable: 4502,
  upstreamTimeout: 4504,
  upstreamLost: 1011,
} as const;

// Above this many bytes queued towards one side, the other side is paused until they are written.
const HIGH_WATER_BYTES = 1024 * 1024;
const MAX_REASON_BYTES = 123;
// A learner's app must not be able to make the controller hold an arbitrarily large frame.
const MAX_UPSTREAM_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Joins a client WebSocket to an upstream one: frames both ways with their text/binary kind, pings from the upstream
 * relayed to the client (so the agent's keepalive sees a dead client), close codes and reasons kept both ways.
 * `onEnd` gets 101 for a bridged session, else the HTTP status the upstream failed with.
 */
export function bridgeWebSocket(
  client: WebSocket,
  upstream: WsUpstream,
  log: FastifyBaseLogger,
  onEnd: (statusCode: number) => void,
): void {
  // Frames the client sends before the upstream is open wait in the socket, not in memory.
  client.pause();
  const agent = new WebSocket(upstream.url, upstream.protocol ? [upstream.protocol] : [], {
    headers: upstream.headers as Record<string, string>,
    handshakeTimeout: upstream.handshakeTimeoutMs,
    perMessageDeflate: false,
    autoPong: false,
    maxPayload: MAX_UPSTREAM_FRAME_BYTES,
  });
  let statusCode = 101;
  let failure: { code: number; reason: string } | undefined;

  agent.on('unexpected-response', (_req, res) => {
    statusCode = res.statusCode ?? 502;
    void readReason(res).then((reason) => {
      failure = { code: 4000 + statusCode, reason };
      agent.terminate();
    });
  });
  agent.on('error', (error: Error & { code?: string }) => {
    if (agent.readyState === WebSocket.OPEN || failure) return log.debug({ err: error }, 'upstream websocket error');
    const timeout = /timed out/i.test(error.message) || error.code === 'ETIMEDOUT';
    statusCode = timeout ? 504 : 502;
    failure = timeout
      ? { code: ProxyCloseCode.upstreamTimeout, reason: 'AGENT_TIMEOUT: upstream did not answer in time' }
      : { code: ProxyCloseCode.upstreamUnavailable, reason: 'AGENT_UNAVAILABLE: upstream is not reachable' };
  });
  agent.on('open', () => {
    relayFrames(client, agent);
    relayFrames(agent, client);
    client.resume();
  });
  agent.on('ping', (data) => {
    if (client.readyState === WebSocket.OPEN) client.ping(data);
  });
  client.on('pong', (data) => {
    if (agent.readyState === WebSocket.OPEN) agent.pong(data);
  });
  agent.on('close', (code, reason) => {
    if (client.readyState !== WebSocket.OPEN) return;
    client.resume();
    if (failure) return client.close(failure.code, failure.reason);
    if (isSendable(code)) return client.close(code, reason);
    if (code === 1005) return client.close();
    client.close(ProxyCloseCode.upstreamLost, 'upstream connection lost');
  });
  client.on('close', (code, reason) => {
    if (agent.readyState === WebSocket.CONNECTING) agent.terminate();
    else if (agent.readyState === WebSocket.OPEN) {
      if (isSendable(code)) agent.close(code, reason);
      else if (code === 1005) agent.close();
      else agent.close(1001, 'client went away');
    }
    onEnd(statusCode);
  });
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
