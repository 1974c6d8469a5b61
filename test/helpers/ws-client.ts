import type http from 'node:http';
import { vi } from 'vitest';
import WebSocket from 'ws';
import { parseJson, type Json } from './http-client.js';

/** A WebSocket to a loopback port: open, or the HTTP answer that refused the upgrade. */
export interface WsOutcome {
  socket?: WebSocket;
  status?: number;
  body?: Json;
  headers?: http.IncomingHttpHeaders;
  error?: string;
  /**
   * Frames that arrived before the caller could listen (a terminal's replay can come in the same read as the 101)
   * and stop collecting them; without it they would be lost between 'open' and the caller's first listener.
   */
  takeEarlyFrames?: () => Buffer[];
}

export function openWebSocket(port: number, path: string, auth: string | null): Promise<WsOutcome> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: auth ? { authorization: auth } : {} });
    const early: Buffer[] = [];
    const keep = (data: Buffer): void => void early.push(data);
    socket.on('message', keep);
    const takeEarlyFrames = (): Buffer[] => {
      socket.off('message', keep);
      return early;
    };
    socket.once('upgrade', (res) => socket.once('open', () => resolve({ socket, headers: res.headers, takeEarlyFrames })));
    socket.once('unexpected-response', (_request, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body: parseJson(text) }));
    });
    socket.once('error', (error) => resolve({ error: String(error) }));
  });
}

/** The close code and reason a socket ends with. */
export function closeOf(socket: WebSocket): Promise<{ code: number; reason: string }> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '' });
  return new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** An interactive shell through a controller's terminal WebSocket. */
export class TerminalClient {
  output = '';
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => (this.output += data.toString('utf8')));
    this.closed = closeOf(socket);
  }

  static async open(controller: { port: number; token: string }, sessionId: string, terminalId: string): Promise<TerminalClient> {
    const outcome = await openWebSocket(controller.port, `/sessions/${sessionId}/terminal/ws?id=${terminalId}`, `Bearer ${controller.token}`);
    if (!outcome.socket) throw new Error(`terminal ${terminalId} of ${sessionId} did not open: ${outcome.status} ${JSON.stringify(outcome.body ?? outcome.error)}`);
    // Listen first, then take what came before, so no frame falls in between.
    const client = new TerminalClient(outcome.socket);
    const early = outcome.takeEarlyFrames?.() ?? [];
    client.output = Buffer.concat(early).toString('utf8') + client.output;
    return client;
  }

  /** Types a line; `""` inside a marker keeps the echoed input from matching the output. */
  type(line: string): void {
    this.socket.send(`${line}\r`);
  }

  async waitFor(text: string | RegExp, timeoutMs = 30_000): Promise<void> {
    const matches = (): boolean => (typeof text === 'string' ? this.output.includes(text) : text.test(this.output));
    await vi.waitFor(
      () => {
        if (!matches()) throw new Error(`terminal never showed ${String(text)}; it showed: ${JSON.stringify(this.output.slice(-500))}`);
      },
      { timeout: timeoutMs, interval: 50 },
    );
  }

  close(): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
  }
}

