import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerErrorHandling } from '../../../../core/http/error-handler.js';
import { connectWebSocket } from '../../../../controller/proxy/ws-proxy.js';
import { proxyRoutes } from '../../../../controller/proxy/proxy.routes.js';

/** One request with the path exactly as spelled (fetch and undici drop a fragment before sending). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: { code?: string } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code?: string } }));
    });
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('error', reject);
    req.end();
  });
}

const UPGRADE = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };

describe('a fragment in a proxied path', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => app?.close());

  it.each([
    ['an agent WebSocket', '/sessions/s1/watch/ws#x', UPGRADE],
    ['a session port WebSocket', '/sessions/s1/ports/8080/a#x', UPGRADE],
    ['an agent route', '/sessions/s1/files#x', {}],
  ])('is refused as INVALID_PATH on %s', async (_, path, headers) => {
    app = Fastify();
    registerErrorHandling(app);
    await app.register(websocket);
    await app.register(proxyRoutes, { resolveAgent: async () => ({ endpoint: { kind: 'unix', socketPath: '/nonexistent.sock' }, token: 't'.repeat(16), address: '127.0.0.1' }) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    expect(await get(port, path, headers)).toEqual({ status: 400, body: expect.objectContaining({ code: 'INVALID_PATH' }) });
  });

  it('is a refused upstream, not a throw, when it reaches the WebSocket bridge', async () => {
    const connection = await connectWebSocket({ url: 'ws://127.0.0.1:1/a#x', headers: {}, handshakeTimeoutMs: 1000 });
    expect(connection).toMatchObject({ ok: false, statusCode: 400, reason: expect.stringMatching(/^INVALID_PATH: /) });
  });
});
