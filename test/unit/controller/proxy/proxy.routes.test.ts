import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerErrorHandling } from '../../../../core/http/error-handler.js';
import { AppError } from '../../../../shared/errors.js';
import { proxyRoutes, type ProxyOptions } from '../../../../controller/proxy/proxy.routes.js';
import type { AgentTarget } from '../../../../controller/proxy/agent-target.js';
import { freePort } from '../../../helpers/free-port.js';
import { createTestAgent, TEST_TOKEN, type TestAgent } from '../../../helpers/test-agent.js';

const UPSTREAM_TOKEN = 'upstream-token-0123456789';
const CLIENT_AUTH = 'Bearer client-token-never-forwarded';

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A stand-in agent on a unix socket with the behaviours the real one has not (yet) got: slow, streaming, echo. */
interface FakeUpstream {
  app: FastifyInstance;
  socketPath: string;
  connections: number;
  /** Bytes of the current upload seen so far, and a signal on each chunk. */
  uploaded: number;
  onUpload: (bytes: number) => void;
  /** Lets /stream send its second chunk and end. */
  release: Deferred;
  arrived: Deferred;
  upstreamClosed: Deferred;
  wsClosed: Deferred<{ code: number; reason: string }>;
  pong: Deferred<string>;
  /** Bytes of /big handed to the socket so far. */
  bigSent: number;
}

// /big: 64 MiB in 1 MiB chunks of a fixed pattern, far more than the sockets and buffers between can hold.
const BIG_CHUNK = Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => i % 251));
const BIG_CHUNKS = 64;

async function startFakeUpstream(dir: string): Promise<FakeUpstream> {
  const app = Fastify();
  const fake: FakeUpstream = {
    app,
    socketPath: join(dir, 'fake.sock'),
    connections: 0,
    uploaded: 0,
    onUpload: () => {},
    release: deferred(),
    arrived: deferred(),
    upstreamClosed: deferred(),
    wsClosed: deferred(),
    pong: deferred(),
    bigSent: 0,
  };
  app.server.on('connection', () => fake.connections++);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  await app.register(websocket);
  app.websocketServer.on('headers', (headers: string[]) => headers.push('X-Upstream-Id: up-42'));

  app.all('/echo/*', async (req) => ({ method: req.method, url: req.url, headers: req.headers }));
  app.post('/upload', async (req) => {
    for await (const chunk of req.body as Readable) {
      fake.uploaded += (chunk as Buffer).length;
      fake.onUpload(fake.uploaded);
    }
    return { bytes: fake.uploaded };
  });
  app.get('/stream', async (_req, reply) => {
    const body = new Readable({ read() {} });
    body.push('{"chunk":1}\n');
    void fake.release.promise.then(() => {
      body.push('{"chunk":2}\n');
      body.push(null);
    });
    return reply.type('application/x-ndjson').send(body);
  });
  // Headers at once, then silence until released: like an exec stream before the command prints anything.
  app.get('/quiet-stream', (_req, reply) => {
    reply.hijack();
    reply.raw.on('close', () => fake.upstreamClosed.resolve());
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson' });
    reply.raw.flushHeaders();
    void fake.release.promise.then(() => reply.raw.end('{"late":true}\n'));
  });
  app.get('/broken-stream', (_req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson' });
    reply.raw.write('{"chunk":1}\n', () => reply.raw.destroy());
  });
  app.post('/exec', async () => {
    await new Promise((resolve) => setTimeout(resolve, 900));
    return { exit_code: 0 };
  });
  app.get('/wait', async (_req, reply) => {
    reply.raw.on('close', () => fake.upstreamClosed.resolve());
    fake.arrived.resolve();
    await fake.release.promise;
    return { late: true };
  });
  // Writes only as fast as its reader takes the bytes, as the agent's file reads do.
  app.get('/big', (_req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_CHUNK.length * BIG_CHUNKS });
    let sent = 0;
    const more = () => {
      while (sent < BIG_CHUNKS) {
        sent++;
        fake.bigSent += BIG_CHUNK.length;
        if (!res.write(BIG_CHUNK)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  app.get('/teapot', async (_req, reply) => reply.code(418).header('x-agent', 'yes').send({ code: 'X', message: 'short and stout' }));

  app.get('/ws/echo', { websocket: true }, (socket) => {
    socket.send('hello');
    socket.on('message', (data, isBinary) => {
      const text = data.toString();
      if (!isBinary && text === 'close-me') socket.close(4321, 'agent-bye');
      else if (!isBinary && text === 'ping-me') socket.ping('keepalive');
      else socket.send(data, { binary: isBinary });
    });
    socket.on('pong', (data) => fake.pong.resolve(data.toString()));
    socket.on('close', (code, reason) => fake.wsClosed.resolve({ code, reason: reason.toString() }));
  });
  app.get('/ws/late', {
    websocket: true,
    // Accepts only after a while, so the client's first frames arrive before the upstream is open.
    preValidation: async () => void (await new Promise((r) => setTimeout(r, 200))),
  }, (socket) => {
    // What an agent sends on connect (a terminal's replay) must reach the client even though it comes first.
    for (let i = 0; i < 50; i++) socket.send(`replay-${i}`);
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  // Refuses in a hook, before the upgrade, as the agent's auth and limits do.
  app.get('/ws/denied', {
    websocket: true,
    preValidation: async (_req, reply) => reply.code(429).send({ code: 'TOO_MANY_TERMINALS', message: 'too many' }),
  }, (socket) => socket.close());

  await app.listen({ path: fake.socketPath });
  return fake;
}

interface Host {
  app: FastifyInstance;
  base: string;
  wsBase: string;
  observed: [string, number, number][];
}

async function startHost(targets: Record<string, AgentTarget>, options: Partial<ProxyOptions> = {}): Promise<Host> {
  const app = Fastify();
  registerErrorHandling(app);
  await app.register(websocket);
  const observed: Host['observed'] = [];
  await app.register(proxyRoutes, {
    resolveAgent: async (id) => {
      const target = targets[id];
      if (!target) throw new AppError('SESSION_NOT_FOUND', `no session ${id}`);
      return target;
    },
    observe: (kind, seconds, status) => observed.push([kind, seconds, status]),
    ...options,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}`, wsBase: `ws://127.0.0.1:${port}`, observed };
}

interface Frame {
  data: Buffer;
  isBinary: boolean;
}

/** A client socket whose frames and close are recorded from the start, so none is missed between awaits. */
function openWs(url: string): { ws: WebSocket; next(): Promise<Frame>; closed: Promise<{ code: number; reason: string }> } {
  const ws = new WebSocket(url, { headers: { authorization: CLIENT_AUTH } });
  // Failures show up as close codes or unexpected responses, which the tests assert.
  ws.on('error', () => {});
  const frames: Frame[] = [];
  let waiting: ((frame: Frame) => void) | undefined;
  ws.on('message', (data, isBinary) => {
    const frame = { data: data as Buffer, isBinary };
    if (waiting) {
      waiting(frame);
      waiting = undefined;
    } else frames.push(frame);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const next = () => {
    const frame = frames.shift();
    return frame ? Promise.resolve(frame) : new Promise<Frame>((resolve) => (waiting = resolve));
  };
  return { ws, next, closed };
}

describe('proxy', () => {
  let dir: string;
  let fake: FakeUpstream;
  let hosts: Host[];
  let cleanups: (() => Promise<unknown> | void)[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proxy-test-'));
    fake = await startFakeUpstream(dir);
    hosts = [];
    cleanups = [];
  });
  afterEach(async () => {
    fake.release.resolve();
    for (const cleanup of cleanups.reverse()) await cleanup();
    for (const host of hosts) await host.app.close();
    await fake.app.close();
    await rm(dir, { recursive: true, force: true });
  });

  const fakeTarget = (): AgentTarget => ({ endpoint: { kind: 'unix', socketPath: fake.socketPath }, token: UPSTREAM_TOKEN, address: '127.0.0.1' });
  const host = async (targets: Record<string, AgentTarget>, options: Partial<ProxyOptions> = {}) => {
    const started = await startHost(targets, options);
    hosts.push(started);
    return started;
  };

  describe('through a real agent', () => {
    let agent: TestAgent;
    beforeEach(async () => {
      agent = await createTestAgent({ AGENT_TOKEN: TEST_TOKEN });
      await agent.app.listen({ path: agent.config.socket! });
      cleanups.push(() => agent.close());
    });
    const agentTarget = (token = TEST_TOKEN): AgentTarget => ({ endpoint: { kind: 'unix', socketPath: agent.config.socket! }, token, address: '127.0.0.1' });

    it('answers an agent route below the session prefix with the session token in place of the client one', async () => {
      const { base } = await host({ s1: agentTarget() });
      const res = await request(`${base}/sessions/s1/health`, { headers: { authorization: CLIENT_AUTH } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ status: 'healthy', daemon: { ready: true } });
    });

    it("passes the agent's error status and body through unchanged", async () => {
      const { base } = await host({ s1: agentTarget() });
      const res = await request(`${base}/sessions/s1/nope?x=1`);
      expect(res.statusCode).toBe(404);
      expect(await res.body.json()).toEqual({ code: 'ROUTE_NOT_FOUND', message: 'no route GET /nope' });
    });

    it('streams exec output through the proxy as the command produces it', async () => {
      const { base } = await host({ s1: agentTarget() });
      const res = await request(`${base}/sessions/s1/exec/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: CLIENT_AUTH },
        // The command waits for a file the test creates only after it has seen the first line.
        body: JSON.stringify({ command: ['sh', '-c', 'echo one; while [ ! -e go ]; do sleep 0.05; done; echo two'] }),
      });
      expect(res.statusCode).toBe(200);
      let text = '';
      const frames = res.body[Symbol.asyncIterator]();
      while (!text.includes('one')) text += String((await frames.next()).value);
      expect(text).not.toContain('two');
      await writeFile(join(agent.workspace, 'go'), '');
      for (let next = await frames.next(); !next.done; next = await frames.next()) text += String(next.value);
      const parsed = text.trim().split('\n').map((line) => JSON.parse(line) as { type: string; data?: string; exit_code?: number });
      expect(parsed.filter((f) => f.type === 'stdout').map((f) => f.data).join('')).toBe('one\ntwo\n');
      expect(parsed.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
    });

    it('runs a terminal through the proxy and names it in the 101 answer', async () => {
      const { wsBase } = await host({ s1: agentTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/terminal/ws?cols=100&rows=30`);
      const [res] = (await once(ws, 'upgrade')) as [IncomingMessage];
      expect(res.headers['x-terminal-id']).toMatch(/^[A-Za-z0-9_-]+$/);
      ws.send('echo "through""-proxy"\r');
      let output = '';
      while (!output.includes('through-proxy')) output += (await next()).data.toString();
      ws.send('exit\r');
      expect((await closed).code).toBe(1000);
    });

    it("returns the agent's 401 when the session token is wrong", async () => {
      const { base } = await host({ s1: agentTarget('wrong-token-0123456789') });
      const res = await request(`${base}/sessions/s1/health`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
      expect(res.statusCode).toBe(401);
      expect(((await res.body.json()) as { code: string }).code).toBe('UNAUTHORIZED');
    });
  });

  describe('HTTP', () => {
    it('strips the session prefix, keeps the query exactly and replaces the client token', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await rawGet(`${base}/sessions/s1/echo/a%2Fb/c?path=%2Fworkspace&x=1&x=2&empty=`, {
        authorization: CLIENT_AUTH,
        'x-custom': 'kept',
        connection: 'keep-alive, x-hop',
        'x-hop': 'dropped',
      });
      expect(res.statusCode).toBe(200);
      const echoed = JSON.parse(res.body) as { url: string; headers: Record<string, string> };
      expect(echoed.url).toBe('/echo/a%2Fb/c?path=%2Fworkspace&x=1&x=2&empty=');
      expect(echoed.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
      expect(echoed.headers['x-custom']).toBe('kept');
      expect(echoed.headers['x-hop']).toBeUndefined();
    });

    it('forwards every method with its body', async () => {
      const { base } = await host({ s1: fakeTarget() });
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
        const res = await request(`${base}/sessions/s1/echo/m`, { method, body: '{"a":1}', headers: { 'content-type': 'application/json' } });
        expect(((await res.body.json()) as { method: string }).method).toBe(method);
      }
    });

    it("passes the upstream's status, headers and body through", async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/teapot`);
      expect(res.statusCode).toBe(418);
      expect(res.headers['x-agent']).toBe('yes');
      expect(await res.body.json()).toEqual({ code: 'X', message: 'short and stout' });
    });

    it('reuses one upstream connection for many requests', async () => {
      const { base } = await host({ s1: fakeTarget() });
      for (let i = 0; i < 20; i++) await (await request(`${base}/sessions/s1/echo/${i}`)).body.dump();
      expect(fake.connections).toBe(1);
    });

    it('streams a large upload to the upstream while it is still being sent', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const firstChunkArrived = deferred();
      fake.onUpload = () => firstChunkArrived.resolve();
      const chunk = Buffer.alloc(1024 * 1024, 7);
      const total = 96;
      async function* upload() {
        yield chunk;
        // The rest is only produced once the upstream has the first MiB: nothing waits for the whole body.
        await firstChunkArrived.promise;
        for (let i = 1; i < total; i++) yield chunk;
      }
      const res = await request(`${base}/sessions/s1/upload`, {
        method: 'POST',
        body: Readable.from(upload()),
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ bytes: total * chunk.length });
    });

    it('holds the upstream back while the client does not read, then delivers every byte', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/big`);
      expect(res.headers['content-length']).toBe(String(BIG_CHUNK.length * BIG_CHUNKS));
      // The client reads nothing until the upstream has stopped sending: backpressure reached it.
      for (let before = -1; fake.bigSent !== before; ) {
        before = fake.bigSent;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      expect(fake.bigSent).toBeLessThan(BIG_CHUNK.length * BIG_CHUNKS);
      const expected = createHash('sha256');
      for (let i = 0; i < BIG_CHUNKS; i++) expected.update(BIG_CHUNK);
      const received = createHash('sha256');
      for await (const chunk of res.body) received.update(chunk as Buffer);
      expect(received.digest('hex')).toBe(expected.digest('hex'));
    });

    it('delivers a streamed response chunk by chunk before the upstream ends it', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/stream`);
      expect(res.headers['content-type']).toBe('application/x-ndjson');
      const reader = res.body[Symbol.asyncIterator]();
      const first = await reader.next();
      expect(String(first.value)).toBe('{"chunk":1}\n');
      fake.release.resolve();
      let rest = '';
      for (let next = await reader.next(); !next.done; next = await reader.next()) rest += String(next.value);
      expect(rest).toBe('{"chunk":2}\n');
    });

    it("sends a stream's status and headers before its first chunk", async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/quiet-stream`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/x-ndjson');
      fake.release.resolve();
      expect(await res.body.text()).toBe('{"late":true}\n');
    });

    it('cuts the response, never a 500, when the upstream breaks off mid-stream', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/broken-stream`);
      expect(res.statusCode).toBe(200);
      await expect(res.body.text()).rejects.toThrow();
    });

    it('cuts a streamed response that stays silent longer than the timeout', async () => {
      const { base } = await host({ s1: fakeTarget() }, { requestTimeoutMs: 300 });
      const res = await request(`${base}/sessions/s1/quiet-stream`);
      expect(res.statusCode).toBe(200);
      await expect(res.body.text()).rejects.toThrow();
      await fake.upstreamClosed.promise;
    });

    it('answers 404 SESSION_NOT_FOUND for an unknown session', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/nobody/health`);
      expect(res.statusCode).toBe(404);
      expect(await res.body.json()).toEqual({ code: 'SESSION_NOT_FOUND', message: 'no session nobody' });
    });

    it('answers 502 AGENT_UNAVAILABLE when nothing listens on the agent socket', async () => {
      const { base, observed } = await host({ s1: { ...fakeTarget(), endpoint: { kind: 'unix', socketPath: join(dir, 'gone.sock') } } });
      const res = await request(`${base}/sessions/s1/health`);
      expect(res.statusCode).toBe(502);
      expect(await res.body.json()).toEqual({ code: 'AGENT_UNAVAILABLE', message: 'the agent of session s1 is not reachable' });
      expect(observed.map(([kind, , status]) => [kind, status])).toEqual([['http', 502]]);
    });

    it('answers 504 AGENT_TIMEOUT when the agent does not answer in time', async () => {
      const { base } = await host({ s1: fakeTarget() }, { requestTimeoutMs: 300 });
      const res = await request(`${base}/sessions/s1/wait`);
      expect(res.statusCode).toBe(504);
      expect(await res.body.json()).toEqual({ code: 'AGENT_TIMEOUT', message: 'the agent of session s1 did not answer in time' });
      await fake.upstreamClosed.promise;
    });

    it('waits for an exec that runs longer than the request timeout', async () => {
      const { base } = await host({ s1: fakeTarget() }, { requestTimeoutMs: 300 });
      const res = await request(`${base}/sessions/s1/exec`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ exit_code: 0 });
    });

    it('cancels the upstream request when the client goes away', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const abort = new AbortController();
      const pending = request(`${base}/sessions/s1/wait`, { signal: abort.signal }).catch((error: Error) => error);
      await fake.arrived.promise;
      abort.abort();
      expect(await pending).toBeInstanceOf(Error);
      await fake.upstreamClosed.promise;
    });

    it('reports each request to observe with its status', async () => {
      const { base, observed } = await host({ s1: fakeTarget() });
      await (await request(`${base}/sessions/s1/teapot`)).body.dump();
      expect(observed).toHaveLength(1);
      const [kind, seconds, status] = observed[0]!;
      expect([kind, status]).toEqual(['http', 418]);
      expect(seconds).toBeGreaterThan(0);
    });
  });

  describe('WebSocket', () => {
    it('carries text and binary frames both ways with their kind', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      const hello = await next();
      expect([hello.data.toString(), hello.isBinary]).toEqual(['hello', false]);
      ws.send('héllo {"json":"text"}');
      const text = await next();
      expect([text.data.toString(), text.isBinary]).toEqual(['héllo {"json":"text"}', false]);
      const bytes = Buffer.from([0, 1, 2, 0xc3, 0xff]);
      ws.send(bytes);
      const binary = await next();
      expect(binary.isBinary).toBe(true);
      expect(binary.data).toEqual(bytes);
      ws.close();
      await closed;
    });

    it("keeps the client's close code and reason on the way to the agent", async () => {
      const { wsBase, observed } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      await next();
      ws.close(4001, 'client-bye');
      expect(await fake.wsClosed.promise).toEqual({ code: 4001, reason: 'client-bye' });
      await closed;
      await expect.poll(() => observed.map(([kind, , status]) => [kind, status])).toEqual([['ws', 101]]);
    });

    it("keeps the agent's close code and reason on the way to the client", async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      await next();
      ws.send('close-me');
      expect(await closed).toEqual({ code: 4321, reason: 'agent-bye' });
    });

    it("relays the agent's keepalive pings to the client and its pongs back", async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      await next();
      const ping = new Promise<string>((resolve) => ws.once('ping', (data) => resolve(data.toString())));
      ws.send('ping-me');
      expect(await ping).toBe('keepalive');
      expect(await fake.pong.promise).toBe('keepalive');
      ws.close();
    });

    it('delivers everything the agent sends on connect, then frames the client sends at once', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/late`);
      await once(ws, 'open');
      ws.send('early-1');
      ws.send(Buffer.from('early-2'));
      const received: string[] = [];
      for (let i = 0; i < 50; i++) received.push((await next()).data.toString());
      expect(received).toEqual(Array.from({ length: 50 }, (_, i) => `replay-${i}`));
      const first = await next();
      const second = await next();
      expect([first.data.toString(), first.isBinary, second.data.toString(), second.isBinary]).toEqual(['early-1', false, 'early-2', true]);
      ws.close();
      await closed;
    });

    it("passes the headers of the agent's 101 answer on to the client", async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      const [res] = (await once(ws, 'upgrade')) as [IncomingMessage];
      expect(res.headers['x-upstream-id']).toBe('up-42');
      ws.close();
      await closed;
    });

    it('refuses the upgrade with 404 for an unknown session', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/nobody/ws/echo`);
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      expect(res.statusCode).toBe(404);
      ws.terminate();
    });

    it('closes the client with 4502 when the agent cannot be reached', async () => {
      const { wsBase, observed } = await host({ s1: { ...fakeTarget(), endpoint: { kind: 'unix', socketPath: join(dir, 'gone.sock') } } });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/terminal/ws`);
      expect(await closed).toEqual({ code: 4502, reason: 'AGENT_UNAVAILABLE: upstream is not reachable' });
      await expect.poll(() => observed.map(([kind, , status]) => [kind, status])).toEqual([['ws', 502]]);
    });

    it("closes the client with 4000 + the agent's status when the agent refuses the upgrade", async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/denied`);
      expect(await closed).toEqual({ code: 4429, reason: 'TOO_MANY_TERMINALS: too many' });
    });

    it('closes the client with 1011 when the agent connection breaks', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ws/echo`);
      await next();
      for (const client of fake.app.websocketServer.clients) client.terminate();
      expect((await closed).code).toBe(1011);
    });
  });

  describe('ports', () => {
    let server: Server;
    let port: number;
    let appProtocols: string[];
    let seen: { url: string; headers: Record<string, string | string[] | undefined> }[];

    beforeEach(async () => {
      seen = [];
      appProtocols = [];
      server = createServer((req, res) => {
        seen.push({ url: req.url!, headers: req.headers });
        res.setHeader('content-type', 'text/plain');
        res.end(`app says ${req.method} ${req.url}`);
      });
      const wss = new WebSocketServer({ server });
      wss.on('connection', (socket) => appProtocols.push(socket.protocol));
      wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as AddressInfo).port;
      cleanups.push(() => {
        for (const client of wss.clients) client.terminate();
        server.closeAllConnections();
        return new Promise((resolve) => server.close(resolve));
      });
    });

    it("reaches a server published inside the session at the session's address", async () => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/ports/${port}/app/page?q=1`, { headers: { authorization: CLIENT_AUTH } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('app says GET /app/page?q=1');
      expect(seen[0]!.headers.authorization).toBeUndefined();
      expect(seen[0]!.headers['x-forwarded-prefix']).toBe(`/sessions/s1/ports/${port}`);
    });

    it('serves the root of the port with or without a trailing slash', async () => {
      const { base } = await host({ s1: fakeTarget() });
      expect(await (await request(`${base}/sessions/s1/ports/${port}`)).body.text()).toBe('app says GET /');
      expect(await (await request(`${base}/sessions/s1/ports/${port}?x=1`)).body.text()).toBe('app says GET /?x=1');
      expect(await (await request(`${base}/sessions/s1/ports/${port}/`)).body.text()).toBe('app says GET /');
    });

    it('carries WebSocket frames to and from the published port', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const { ws, next, closed } = openWs(`${wsBase}/sessions/s1/ports/${port}/socket`);
      await once(ws, 'open');
      ws.send('to the app');
      const echoed = await next();
      expect([echoed.data.toString(), echoed.isBinary]).toEqual(['to the app', false]);
      ws.close();
      await closed;
    });

    it('agrees on the subprotocol the app picks, as a dev server\'s live reload needs', async () => {
      const { wsBase } = await host({ s1: fakeTarget() });
      const ws = new WebSocket(`${wsBase}/sessions/s1/ports/${port}/hmr`, ['vite-hmr']);
      await once(ws, 'open');
      expect(ws.protocol).toBe('vite-hmr');
      ws.send('reload');
      const [echoed] = (await once(ws, 'message')) as [Buffer];
      expect(echoed.toString()).toBe('reload');
      expect(appProtocols).toEqual(['vite-hmr']);
      ws.close();
      await once(ws, 'close');
    });

    it.each(['0', '65536', 'http', '-1', '1e3'])('rejects port %s with 400 VALIDATION', async (bad) => {
      const { base } = await host({ s1: fakeTarget() });
      const res = await request(`${base}/sessions/s1/ports/${bad}/x`);
      expect(res.statusCode).toBe(400);
      expect(((await res.body.json()) as { code: string }).code).toBe('VALIDATION');
    });

    it('answers 502 with a code when nothing listens on the port', async () => {
      const { base } = await host({ s1: fakeTarget() });
      const closedPort = await freePort();
      const res = await request(`${base}/sessions/s1/ports/${closedPort}/`);
      expect(res.statusCode).toBe(502);
      expect(await res.body.json()).toEqual({
        code: 'PORT_UNAVAILABLE',
        message: `port ${closedPort} of session s1 is not reachable`,
        port: closedPort,
      });
    });
  });
});

/** A GET with exactly these headers (undici would rewrite Connection). */
async function rawGet(url: string, headers: Record<string, string>): Promise<{ statusCode: number; body: string }> {
  const req = httpRequest(url, { headers });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { statusCode: res.statusCode!, body };
}
