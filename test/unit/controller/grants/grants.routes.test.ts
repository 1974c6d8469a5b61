import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redactUrl } from '../../../../core/process/logger.js';
import { ErrorCode } from '../../../../shared/errors.js';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../../helpers/controller-fakes.js';

const AUTH = { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}` };
const PLATFORM = 'https://platform.test';
const UPGRADE = { connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
const ENV = {
  RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN,
  PREVIEW_DOMAIN: 'preview.test',
  RUNNER_ALLOWED_ORIGINS: `${PLATFORM}, https://other.test`,
  RUNNER_PUBLIC_URL: 'https://runner.test',
};

describe('browser grants', () => {
  let ctl: TestController;
  let agents: Server[];

  /** A stand-in agent on the session's socket: serves /files/workspace/<path> as bytes. */
  const serveFiles = async (sessionId: string, files: Record<string, string>) => {
    const server = createServer((req, res) => {
      const path = decodeURIComponent((req.url ?? '').replace(/^\/files/, ''));
      const content = files[path];
      if (content === undefined) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"FILE_NOT_FOUND","message":"no such file"}');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(content) }).end(content);
    });
    server.listen(join(ctl.socketsDir, sessionId, 'agent', 'agent.sock'));
    await once(server, 'listening');
    agents.push(server);
  };
  const createSession = async (id: string) => {
    expect((await ctl.app.inject({ method: 'POST', url: '/sessions', headers: AUTH, payload: { session_id: id } })).statusCode).toBe(201);
  };
  const mint = async (id: string, payload: Record<string, unknown>) => {
    const res = await ctl.app.inject({ method: 'POST', url: `/sessions/${id}/grants`, headers: AUTH, payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { url: string; capability: string; expires_at: string };
  };
  const local = (url: string) => url.replace(/^\w+:\/\/[^/]+/, '');
  const tokenOf = (url: string) => new URL(url).searchParams.get('ticket') ?? new URL(url).searchParams.get('token') ?? '';

  beforeEach(async () => {
    agents = [];
    ctl = await createTestController(ENV);
    // Sessions on loopback: a preview reaches a server of this test, nothing beyond.
    const create = ctl.runtime.createSession.bind(ctl.runtime);
    ctl.runtime.createSession = async (spec) => ({ ...(await create(spec)), address: '127.0.0.1' });
    await createSession('s1');
    await createSession('s2');
  });
  afterEach(async () => {
    for (const server of agents) server.close();
    await ctl.close();
  });

  describe('minting', () => {
    it('answers each capability with the URL a browser opens and when it expires', async () => {
      const now = ctl.clock.now;
      const terminal = await mint('s1', { capability: 'terminal', terminal_id: 'main' });
      expect(terminal.url).toMatch(/^wss:\/\/runner\.test\/sessions\/s1\/terminal\/ws\?ticket=g1\.[\w-]+\.[\w-]+&id=main$/);
      expect(Date.parse(terminal.expires_at)).toBe(now + 60_000);
      const preview = await mint('s1', { capability: 'preview', port: 3000, path: '/app?x=1' });
      expect(preview.url).toMatch(/^https:\/\/3000-s1\.preview\.test\/__runner\/auth\?ticket=g1\.[\w-]+\.[\w-]+&next=%2Fapp%3Fx%3D1$/);
      const file = await mint('s1', { capability: 'file', path: 'out/a.txt', ttl_seconds: 3600 });
      expect(file.url).toMatch(/^https:\/\/runner\.test\/sessions\/s1\/download\?token=g1\./);
      expect(Date.parse(file.expires_at)).toBe(now + 300_000);
    });

    it('is for the backend only', async () => {
      const res = await ctl.app.inject({ method: 'POST', url: '/sessions/s1/grants', payload: { capability: 'terminal' } });
      expect(res.statusCode).toBe(401);
      expect(res.json().code).toBe('UNAUTHORIZED');
      expect((await ctl.app.inject({ method: 'DELETE', url: '/sessions/s1/grants' })).statusCode).toBe(401);
    });

    it('refuses each bad request with its own code', async () => {
      const cases: [Record<string, unknown>, number, string][] = [
        [{ capability: 'root' }, 400, 'GRANT_UNKNOWN_CAPABILITY'],
        [{ capability: 'preview', port: 0 }, 400, 'GRANT_PORT_OUT_OF_RANGE'],
        [{ capability: 'preview', port: 65_536 }, 400, 'GRANT_PORT_OUT_OF_RANGE'],
        [{ capability: 'preview' }, 400, 'VALIDATION'],
        [{ capability: 'preview', port: 80, path: '//evil.test/' }, 400, 'VALIDATION'],
        [{ capability: 'file', path: '/workspace/../etc/shadow' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
        [{ capability: 'file', path: '/etc/passwd' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
        [{ capability: 'file', path: '/workspace' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
        [{ capability: 'file' }, 400, 'VALIDATION'],
        [{ capability: 'terminal', terminal_id: '../x' }, 400, 'VALIDATION'],
      ];
      for (const [payload, status, code] of cases) {
        const res = await ctl.app.inject({ method: 'POST', url: '/sessions/s1/grants', headers: AUTH, payload });
        expect([res.statusCode, res.json().code], JSON.stringify(payload)).toEqual([status, code]);
      }
      const unknown = await ctl.app.inject({ method: 'POST', url: '/sessions/nope/grants', headers: AUTH, payload: { capability: 'terminal' } });
      expect([unknown.statusCode, unknown.json().code]).toEqual([404, 'SESSION_NOT_FOUND']);
    });

    it('answers 409 PREVIEWS_OFF for a preview when the runner has no PREVIEW_DOMAIN, and still mints the others', async () => {
      const { PREVIEW_DOMAIN: _off, ...env } = ENV;
      const plain = await createTestController(env);
      try {
        expect((await plain.app.inject({ method: 'POST', url: '/sessions', headers: AUTH, payload: { session_id: 's1' } })).statusCode).toBe(201);
        const grant = (payload: Record<string, unknown>) => plain.app.inject({ method: 'POST', url: '/sessions/s1/grants', headers: AUTH, payload });
        const preview = await grant({ capability: 'preview', port: 3000 });
        expect([preview.statusCode, preview.json().code]).toEqual([409, 'PREVIEWS_OFF']);
        expect((await grant({ capability: 'terminal' })).statusCode).toBe(201);
      } finally {
        await plain.close();
      }
    });

    it('answers hostile bodies with a 4xx and a code, never a 500', async () => {
      const bodies: unknown[] = [
        null, [], 'terminal', 42, {}, { capability: null }, { capability: ['terminal'] }, { capability: 'terminal', port: 'x' },
        { capability: 'preview', port: 1.5 }, { capability: 'preview', port: -1 }, { capability: 'preview', port: 1e300 },
        { capability: 'file', path: '\0' }, { capability: 'file', path: 'x'.repeat(10_000) }, { capability: 'file', path: {} },
        { capability: 'terminal', ttl_seconds: -5 }, { capability: 'terminal', ttl_seconds: 1e20 }, { __proto__: { capability: 'terminal' } },
        { capability: 'terminal', terminal_id: 'x'.repeat(500) }, { capability: 'preview', port: 80, path: 'https://evil.test' },
        { capability: 'preview', port: 80, path: '/\\evil.test' }, { capability: 'preview', port: 80, path: '/a b' },
      ];
      for (const body of bodies) {
        const res = await ctl.app.inject({ method: 'POST', url: '/sessions/s1/grants', headers: { ...AUTH, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expect(res.statusCode, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
        expect(res.statusCode, JSON.stringify(body)).toBeLessThan(500);
        expect(ErrorCode.safeParse(res.json().code).success).toBe(true);
      }
      const notJson = await ctl.app.inject({ method: 'POST', url: '/sessions/s1/grants', headers: { ...AUTH, 'content-type': 'application/json' }, payload: '{"capability":' });
      expect(notJson.statusCode).toBe(400);
    });

    it('keeps its generated key root-only, and grants pass after a restart', async () => {
      const file = await mint('s1', { capability: 'file', path: '/workspace/a.txt' });
      expect((await stat(join(ctl.socketsDir, 'grants.key'))).mode & 0o777).toBe(0o600);
      await ctl.restart(ENV);
      await serveFiles('s1', { '/workspace/a.txt': 'kept' });
      const res = await ctl.app.inject({ url: local(file.url) });
      expect([res.statusCode, res.body]).toEqual([200, 'kept']);
    });

    it('never logs a ticket or a token', () => {
      for (const url of ['/sessions/s1/terminal/ws?ticket=g1.a.b&id=main', '/sessions/s1/download?token=g1.a.b', '/__runner/preview/__runner/auth?ticket=g1.a.b&next=%2F']) {
        expect(redactUrl(url)).not.toContain('g1.a.b');
      }
    });
  });

  describe('file links', () => {
    it('serves the file as an attachment, again and again within its time', async () => {
      await serveFiles('s1', { '/workspace/out/r&d "notes".txt': 'hello' });
      const { url } = await mint('s1', { capability: 'file', path: '/workspace/out/r&d "notes".txt' });
      for (const headers of [{}, { range: 'bytes=0-1' }]) {
        const res = await ctl.app.inject({ url: local(url), headers });
        expect(res.statusCode).toBe(200);
        expect(res.body).toBe('hello');
        expect(res.headers).toMatchObject({
          'content-disposition': `attachment; filename="r&d _notes_.txt"; filename*=UTF-8''${encodeURIComponent('r&d "notes".txt')}`,
          'x-content-type-options': 'nosniff',
          'cache-control': 'no-store',
          'content-type': 'application/octet-stream',
        });
      }
      ctl.clock.now += 301_000;
      const late = await ctl.app.inject({ url: local(url) });
      expect([late.statusCode, late.json().code]).toEqual([401, 'GRANT_EXPIRED']);
    });

    it('serves a folder as a .tar.gz the agent packs', async () => {
      const asked: string[] = [];
      const server = createServer((req, res) => {
        asked.push(req.url ?? '');
        if (req.url === '/files/workspace/site') {
          return void res.writeHead(409, { 'content-type': 'application/json' }).end('{"code":"IS_A_DIRECTORY","message":"a folder"}');
        }
        if (req.url === `/archive?path=${encodeURIComponent('/workspace/site')}`) {
          return void res.writeHead(200, { 'content-type': 'application/gzip' }).end('gzip-bytes');
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"FILE_NOT_FOUND","message":"no such file"}');
      });
      server.listen(join(ctl.socketsDir, 's1', 'agent', 'agent.sock'));
      await once(server, 'listening');
      agents.push(server);
      const { url } = await mint('s1', { capability: 'file', path: '/workspace/site' });
      const res = await ctl.app.inject({ url: local(url) });
      expect([res.statusCode, res.body]).toEqual([200, 'gzip-bytes']);
      expect(res.headers).toMatchObject({
        'content-disposition': `attachment; filename="site.tar.gz"; filename*=UTF-8''site.tar.gz`,
        'content-type': 'application/gzip',
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-store',
      });
      expect(asked).toEqual(['/files/workspace/site', `/archive?path=${encodeURIComponent('/workspace/site')}`]);
    });

    it("passes the agent's error through", async () => {
      await serveFiles('s1', {});
      const { url } = await mint('s1', { capability: 'file', path: '/workspace/gone.txt' });
      const res = await ctl.app.inject({ url: local(url) });
      expect([res.statusCode, res.json().code]).toEqual([404, 'FILE_NOT_FOUND']);
    });

    it('refuses a tampered token, another session’s, another capability’s, and a revoked one', async () => {
      await serveFiles('s1', { '/workspace/a.txt': 'a' });
      const { url } = await mint('s1', { capability: 'file', path: '/workspace/a.txt' });
      const token = tokenOf(url);
      const expectRefused = async (path: string, status: number, code: string) => {
        const res = await ctl.app.inject({ url: path });
        expect([res.statusCode, res.json().code], path.slice(0, 60)).toEqual([status, code]);
      };
      await expectRefused(`/sessions/s1/download?token=${token.slice(0, -4)}AAAA`, 401, 'GRANT_TAMPERED');
      await expectRefused(`/sessions/s2/download?token=${token}`, 403, 'GRANT_WRONG_SESSION');
      // Another session's grant on a session that does not exist says the same: nothing about which sessions exist.
      await expectRefused(`/sessions/nobody/download?token=${token}`, 403, 'GRANT_WRONG_SESSION');
      const ticket = tokenOf((await mint('s1', { capability: 'terminal' })).url);
      await expectRefused(`/sessions/s1/download?token=${ticket}`, 403, 'GRANT_WRONG_CAPABILITY');
      await expectRefused('/sessions/s1/download', 401, 'UNAUTHORIZED');
      expect((await ctl.app.inject({ method: 'DELETE', url: '/sessions/s1/grants', headers: AUTH })).json()).toEqual({ session_id: 's1', revoked: true });
      await expectRefused(local(url), 401, 'GRANT_REVOKED');
    });

    it('a new session under the same id does not honour the old one’s links', async () => {
      const { url } = await mint('s1', { capability: 'file', path: '/workspace/a.txt' });
      await ctl.app.inject({ method: 'DELETE', url: '/sessions/s1', headers: AUTH });
      await createSession('s1');
      const res = await ctl.app.inject({ url: local(url) });
      expect([res.statusCode, res.json().code]).toEqual([401, 'GRANT_REVOKED']);
    });
  });

  describe('terminal tickets', () => {
    const open = (path: string, origin = PLATFORM) => ctl.app.inject({ url: path, headers: { ...UPGRADE, origin } });

    it('lets a ticketed upgrade past the bearer check once, from an allowed origin only', async () => {
      const { url } = await mint('s1', { capability: 'terminal' });
      const wrongOrigin = await open(local(url), 'https://evil.test');
      expect([wrongOrigin.statusCode, wrongOrigin.json().code]).toEqual([403, 'GRANT_WRONG_ORIGIN']);
      // Admitted: it gets as far as the agent (none runs here), not refused by a grant or the bearer check.
      const first = await open(local(url));
      expect(first.json().code).toBe('AGENT_UNAVAILABLE');
      const again = await open(local(url));
      expect([again.statusCode, again.json().code]).toEqual([401, 'GRANT_USED']);
    });

    it("lets the controller's own page (its console) open a ticket without being listed, and no look-alike", async () => {
      const fromPage = async (origin: string | undefined, host = 'runner.test:8443') => {
        const { url } = await mint('s1', { capability: 'terminal' });
        const res = await ctl.app.inject({ url: local(url), headers: { ...UPGRADE, host, ...(origin === undefined ? {} : { origin }) } });
        return res.json().code as string;
      };
      // Admitted: as far as the agent (none runs here).
      expect(await fromPage('https://runner.test:8443')).toBe('AGENT_UNAVAILABLE');
      expect(await fromPage('http://runner.test:8443')).toBe('AGENT_UNAVAILABLE');
      expect(await fromPage('https://runner.test', 'RUNNER.test')).toBe('AGENT_UNAVAILABLE');
      // Not a browser: the ticket alone is the credential, as for a backend.
      expect(await fromPage(undefined)).toBe('AGENT_UNAVAILABLE');
      for (const origin of [
        'https://runner.test',
        'https://runner.test:8443.evil.test',
        'https://evil.test',
        'https://3000-s1.preview.test',
        'https://runner.test:8443/',
        'https://user@runner.test:8443',
        'ws://runner.test:8443',
        'null',
        '',
      ]) {
        expect(await fromPage(origin), origin).toBe('GRANT_WRONG_ORIGIN');
      }
      expect(await fromPage('https://evil.test', '')).toBe('GRANT_WRONG_ORIGIN');
    });

    it('refuses an expired ticket, another terminal’s, and a ticket on a plain request', async () => {
      const bound = await mint('s1', { capability: 'terminal', terminal_id: 'main' });
      const other = await open(local(bound.url).replace('id=main', 'id=other'));
      expect([other.statusCode, other.json().code]).toEqual([403, 'GRANT_WRONG_TERMINAL']);
      const plain = await ctl.app.inject({ url: local(bound.url) });
      expect([plain.statusCode, plain.json().code]).toEqual([401, 'UNAUTHORIZED']);
      const post = await ctl.app.inject({ method: 'POST', url: local(bound.url), headers: { ...UPGRADE, origin: PLATFORM } });
      expect([post.statusCode, post.json().code]).toEqual([401, 'UNAUTHORIZED']);
      ctl.clock.now += 61_000;
      const late = await open(local(bound.url));
      expect([late.statusCode, late.json().code]).toEqual([401, 'GRANT_EXPIRED']);
    });

    it('answers garbage tickets with a grant code, never a 500', async () => {
      for (const ticket of ['', 'x', 'g1..', 'g1.%00.%00', `g1.${'A'.repeat(9000)}.x`, 'g1.e30.AAAA', '%E0%A4%A', encodeURIComponent('g1.{"v":1}.x')]) {
        const res = await open(`/sessions/s1/terminal/ws?ticket=${ticket}`);
        expect(res.statusCode, ticket.slice(0, 30)).toBeLessThan(500);
        expect(res.json().code, ticket.slice(0, 30)).toMatch(/^GRANT_/);
      }
    });
  });

  describe('preview origins', () => {
    let app: Server;
    let port: number;
    let host: string;
    beforeEach(async () => {
      // The learner's app: echoes what it was sent.
      app = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, headers: req.headers })));
      app.listen(0, '127.0.0.1');
      await once(app, 'listening');
      port = (app.address() as AddressInfo).port;
      host = `${port}-s1.preview.test`;
    });
    afterEach(() => void app.close());
    const onPreview = (name: string, path: string, headers: Record<string, string> = {}) => ctl.app.inject({ url: path, headers: { host: name, ...headers } });

    it('exchanges the sign-in ticket for a host-only cookie, then serves the app at the root, unrewritten', async () => {
      const { url } = await mint('s1', { capability: 'preview', port, path: '/start' });
      const res = await onPreview(host, local(url));
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/start');
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(/^__Host-runner_preview=g1\.[\w-]+\.[\w-]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; Partitioned; SameSite=None$/);
      expect(cookie).not.toMatch(/Domain=/i);
      const value = cookie.split(';')[0]!;
      // The controller's own paths are the app's paths here, and the API token opens nothing.
      for (const path of ['/', '/sessions?x=1', '/health', '/sessions/s1/files', '/__runner/preview/x']) {
        const answer = await onPreview(host, path, { cookie: `a=1; ${value}; b=2`, ...AUTH, 'x-forwarded-host': 'evil.test', 'x-forwarded-for': '6.6.6.6' });
        expect(answer.statusCode, path).toBe(200);
        const seen = answer.json() as { url: string; headers: Record<string, string> };
        expect(seen.url).toBe(path);
        expect(seen.headers.cookie).toBe('a=1; b=2');
        expect(seen.headers.authorization).toBeUndefined();
        expect(seen.headers['x-forwarded-host']).toBe(host);
        expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
      }
      const used = await onPreview(host, local(url));
      expect([used.statusCode, used.json().code]).toEqual([401, 'GRANT_USED']);
    });

    it('refuses a missing cookie, a foreign name, another port, another session, and a redirect off the origin', async () => {
      const expectRefused = async (host: string, path: string, status: number, code: string, headers: Record<string, string> = {}) => {
        const res = await onPreview(host, path, headers);
        expect([res.statusCode, res.json().code], `${host} ${path}`).toEqual([status, code]);
      };
      await expectRefused(host, '/sessions', 401, 'GRANT_MISSING', AUTH);
      await expectRefused('preview.test', '/sessions', 404, 'PREVIEW_NOT_FOUND', AUTH);
      await expectRefused('s1.preview.test', '/', 404, 'PREVIEW_NOT_FOUND');
      await expectRefused('03000-s1.preview.test', '/', 404, 'PREVIEW_NOT_FOUND');
      await expectRefused('99999-s1.preview.test', '/', 404, 'PREVIEW_NOT_FOUND');
      const { url } = await mint('s1', { capability: 'preview', port: 3000 });
      await expectRefused('3001-s1.preview.test', local(url), 403, 'GRANT_WRONG_PORT');
      await expectRefused('3000-s2.preview.test', local(url), 403, 'GRANT_WRONG_SESSION');
      await expectRefused('3000-nobody.preview.test', local(url), 403, 'GRANT_WRONG_SESSION');
      await expectRefused('3000-s1.preview.test', local(url).replace('next=%2F', 'next=%2F%2Fevil.test'), 400, 'VALIDATION');
      await expectRefused('3000-s1.preview.test', '/__runner/auth?ticket=garbage', 401, 'GRANT_TAMPERED');
      const ticket = tokenOf((await mint('s1', { capability: 'terminal' })).url);
      await expectRefused('3000-s1.preview.test', `/__runner/auth?ticket=${ticket}`, 403, 'GRANT_WRONG_CAPABILITY');
      // A sign-in ticket is not the cookie.
      const signIn = tokenOf((await mint('s1', { capability: 'preview', port: 3000 })).url);
      await expectRefused('3000-s1.preview.test', '/', 403, 'GRANT_WRONG_CAPABILITY', { cookie: `__Host-runner_preview=${signIn}` });
    });

    it('is not reachable on the API host, and the cookie stops passing when revoked', async () => {
      const direct = await ctl.app.inject({ url: '/__runner/preview/', headers: AUTH });
      expect(direct.statusCode).toBe(404);
      const { url } = await mint('s1', { capability: 'preview', port: 3000 });
      const cookie = String((await onPreview('3000-s1.preview.test', local(url))).headers['set-cookie']).split(';')[0]!;
      await ctl.app.inject({ method: 'DELETE', url: '/sessions/s1/grants', headers: AUTH });
      const res = await onPreview('3000-s1.preview.test', '/', { cookie });
      expect([res.statusCode, res.json().code]).toEqual([401, 'GRANT_REVOKED']);
    });
  });
});
