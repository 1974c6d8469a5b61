import { randomUUID } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import WebSocket, { type RawData } from 'ws';
import { AgentRoute } from '../../shared/routes.js';
import { agentWebSocketUrl } from '../proxy/agent-target.js';
import { ContainrLabRoute, TerminalClientFrame } from '../../shared/schemas/containrlab.js';
import { connectWebSocket, type UpstreamConnection } from '../proxy/ws-proxy.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { CompatError } from './compat-errors.js';
import type { SessionAgent } from './session-agent.js';

const HANDSHAKE_TIMEOUT_MS = 30_000;

interface Upstream {
  connection: UpstreamConnection;
  sessionId: string;
  terminalId: string;
}

/**
 * `WS /terminal/{session_id}`: ContainrLab's terminal protocol over a new terminal of the session's agent. Output
 * goes out as text frames cut only between UTF-8 characters; JSON `input`, `resize` and `pong` frames come in, and
 * any other text is typed as it is. The terminal ends with the connection, as a ContainrLab terminal does.
 */
export const terminalBridgeRoute: FastifyPluginAsync<{ sessions: SessionManager; agent: SessionAgent }> = async (app, { sessions, agent }) => {
  const upstreams = new WeakMap<FastifyRequest, Upstream>();

  app.route<{ Params: { session_id: string } }>({
    method: 'GET',
    url: ContainrLabRoute.terminal,
    // Connected before the client is upgraded: an unknown session is a plain 404, one not running 409.
    preHandler: async (request) => {
      if (!request.ws) return;
      const sessionId = request.params.session_id;
      await agent.requireRunning(sessionId);
      const target = await sessions.resolveAgent(sessionId);
      const terminalId = `containrlab-${randomUUID()}`;
      const connection = await connectWebSocket({
        url: agentWebSocketUrl(target.endpoint, `${AgentRoute.terminalWs}?id=${terminalId}`),
        headers: { authorization: `Bearer ${target.token}` },
        handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      });
      upstreams.set(request, { connection, sessionId, terminalId });
      if (connection.ok) request.raw.socket.once('close', () => connection.socket.terminate());
    },
    handler: async () => {
      throw new CompatError(400, { detail: 'this route is a WebSocket: send an Upgrade request' });
    },
    wsHandler: (client, request) => {
      const upstream = upstreams.get(request)!;
      upstreams.delete(request);
      if (!upstream.connection.ok) {
        client.close(upstream.connection.closeCode, upstream.connection.reason);
        return;
      }
      bridge(client, upstream.connection.socket, (cols, rows) => {
        void agent
          .call(upstream.sessionId, 'POST', AgentRoute.terminalResize.replace(':terminal_id', encodeURIComponent(upstream.terminalId)), { cols, rows })
          .catch((err: unknown) => request.log.debug({ err }, 'terminal resize failed'));
      });
      client.once('close', () => {
        void agent
          .call(upstream.sessionId, 'DELETE', AgentRoute.terminal.replace(':terminal_id', encodeURIComponent(upstream.terminalId)))
          .catch((err: unknown) => request.log.debug({ err }, 'terminal already gone'));
      });
    },
  });
};

function bridge(client: WebSocket, shell: WebSocket, resize: (cols: number, rows: number) => void): void {
  // Holds back the bytes of a character cut across two frames until the rest arrives.
  const decoder = new StringDecoder('utf8');
  const send = (text: string) => {
    if (text && client.readyState === WebSocket.OPEN) client.send(text);
  };
  shell.on('message', (data: RawData) => send(decoder.write(toBuffer(data))));
  shell.on('ping', () => {
    if (client.readyState === WebSocket.OPEN) client.ping();
  });
  shell.on('close', () => {
    send(decoder.end());
    if (client.readyState === WebSocket.OPEN) client.close(1000, 'shell exited');
  });
  shell.on('error', () => {});
  client.on('message', (data: RawData, isBinary: boolean) => {
    if (shell.readyState !== WebSocket.OPEN) return;
    const bytes = toBuffer(data);
    if (isBinary) return void shell.send(bytes);
    const frame = parseFrame(bytes.toString('utf8'));
    if (frame === undefined) shell.send(bytes);
    else if (frame?.type === 'input') shell.send(Buffer.from(frame.data, 'utf8'));
    else if (frame?.type === 'resize') resize(frame.cols, frame.rows);
  });
  client.on('close', () => {
    if (shell.readyState === WebSocket.OPEN) shell.close(1000, 'client went away');
    else shell.terminate();
  });
  shell.resume();
}

/**
 * A JSON object frame (`null` when it is one of no known type, to be ignored), or undefined when the text is to be
 * typed as it is: not JSON, or JSON that is not an object.
 */
function parseFrame(text: string): TerminalClientFrame | null | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const frame = TerminalClientFrame.safeParse(value);
  return frame.success ? frame.data : null;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
