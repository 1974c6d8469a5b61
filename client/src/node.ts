import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import { RunnerError } from './runner-error.js';
import type { SessionClient, TerminalOptions } from './session-client.js';
import type { ErrorBody } from './types.js';

export * from './index.js';

export interface NodeTerminal {
  /** The terminal's id: attach again with it to reach the same shell. */
  id: string;
  /** Raw terminal bytes both ways; it ends when the shell exits or the session goes. */
  stream: Duplex;
  /** Resolves with the close code and reason (`exit <code>` when the shell exited). */
  closed: Promise<{ code: number; reason: string }>;
}

/** Attaches to a session's terminal from Node: a new shell, or with `id` the same one again with its scrollback. */
export function attachTerminal(session: SessionClient, authorization: Record<string, string>, options: TerminalOptions = {}): Promise<NodeTerminal> {
  const socket = new WebSocket(session.terminalUrl(options), { headers: authorization });
  return new Promise((resolve, reject) => {
    let id = options.id ?? '';
    socket.once('upgrade', (response) => {
      id = String(response.headers['x-terminal-id'] ?? id);
    });
    socket.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        try {
          reject(new RunnerError(status, JSON.parse(Buffer.concat(chunks).toString('utf8')) as ErrorBody));
        } catch {
          reject(new RunnerError(status, { code: 'INTERNAL', message: `HTTP ${status}` }));
        }
      });
    });
    socket.once('error', reject);
    socket.once('open', () => {
      socket.off('error', reject);
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        socket.once('close', (code, reason) => done({ code, reason: reason.toString('utf8') })),
      );
      resolve({ id, stream: createWebSocketStream(socket), closed });
    });
  });
}
