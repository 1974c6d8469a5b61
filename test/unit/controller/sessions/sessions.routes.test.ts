import { access, readFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppError } from '../../../../shared/errors.js';
import { createTestController, HEALTHY, type TestController } from '../../../helpers/controller-fakes.js';

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

describe('sessions', () => {
  let ctl: TestController;
  afterEach(async () => ctl?.close());

  const create = (body: object) => ctl.app.inject({ method: 'POST', url: '/sessions', payload: body });

  it('creates the seed\'s session once its agent is ready, with its expiry', async () => {
    ctl = await createTestController();
    const res = await create({ session_id: 'test-123', ttl_seconds: 1800 });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({
      session_id: 'test-123',
      container_name: 'sess-test-123',
      status: 'running',
      created_at: '2025-10-27T22:00:00.000Z',
      expires_at: '2025-10-27T22:30:00.000Z',
    });
    expect(ctl.agents.probed).toEqual(new Set([join(ctl.socketsDir, 'test-123', 'agent', 'agent.sock')]));
    expect([...ctl.runtime.volumes.keys()].sort()).toEqual(['sess-test-123-docker', 'sess-test-123-workspace']);
  });

  it('counts the time to live from when the session is ready', async () => {
    ctl = await createTestController();
    ctl.agents.beforeAnswer = () => {
      ctl.clock.now += 10_000;
    };
    const res = await create({ session_id: 'slow-start', ttl_seconds: 60 });
    expect(res.json()).toMatchObject({ created_at: '2025-10-27T22:00:10.000Z', expires_at: '2025-10-27T22:01:10.000Z' });
    const state = JSON.parse(await readFile(join(ctl.socketsDir, 'slow-start', 'session.json'), 'utf8'));
    expect(state.expires_at).toBe('2025-10-27T22:01:10.000Z');
  });

  it('keeps an id that already starts with sess- as the container name', async () => {
    ctl = await createTestController();
    const res = await create({ session_id: 'sess-abc123' });
    expect(res.json()).toMatchObject({ container_name: 'sess-abc123', expires_at: '2025-10-27T22:30:00.000Z' });
  });

  it('gives each session its own agent token in a root-only file of its folder', async () => {
    ctl = await createTestController();
    await create({ session_id: 'a' });
    await create({ session_id: 'b' });
    const tokenA = await readFile(join(ctl.socketsDir, 'a', 'agent', 'token'), 'utf8');
    const tokenB = await readFile(join(ctl.socketsDir, 'b', 'agent', 'token'), 'utf8');
    expect(tokenA).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenB).not.toBe(tokenA);
    expect(ctl.runtime.specs.map((s) => s.agentDir)).toEqual([join(ctl.socketsDir, 'a', 'agent'), join(ctl.socketsDir, 'b', 'agent')]);
  });

  it('refuses a second session with the same id', async () => {
    ctl = await createTestController();
    expect((await create({ session_id: 'dup' })).statusCode).toBe(201);
    const again = await create({ session_id: 'dup' });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('SESSION_EXISTS');
  });

  it('answers one of two simultaneous creates of an id with 409', async () => {
    ctl = await createTestController();
    const results = await Promise.all([create({ session_id: 'race' }), create({ session_id: 'race' })]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    expect(ctl.runtime.containers.size).toBe(1);
  });

  it('refuses a session whose container name another session already has', async () => {
    ctl = await createTestController();
    await create({ session_id: 'abc' });
    const clash = await create({ session_id: 'sess-abc' });
    expect(clash.statusCode).toBe(409);
    expect(clash.json().code).toBe('SESSION_EXISTS');
    expect((await ctl.app.inject({ url: '/sessions/abc' })).statusCode).toBe(200);
    expect(await exists(join(ctl.socketsDir, 'abc', 'agent', 'token'))).toBe(true);
  });

  it.each([
    [{ session_id: 'Upper' }],
    [{ session_id: '-lead' }],
    [{ session_id: '../etc' }],
    [{ session_id: 'a'.repeat(49) }],
    [{ session_id: 'ok', ttl_seconds: 0 }],
    [{ session_id: 'ok', ttl_seconds: 1.5 }],
    [{ session_id: 'ok', ttl_seconds: '60' }],
    [{}],
  ])('rejects %j with VALIDATION', async (body) => {
    ctl = await createTestController();
    const res = await create(body);
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('VALIDATION');
    expect(ctl.runtime.specs).toHaveLength(0);
  });

  it('bounds ttl_seconds by MAX_TTL_SECONDS', async () => {
    ctl = await createTestController({ MAX_TTL_SECONDS: '3600' });
    const res = await create({ session_id: 'long', ttl_seconds: 3601 });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'VALIDATION', max_ttl_seconds: 3600 });
    expect((await create({ session_id: 'long', ttl_seconds: 3600 })).statusCode).toBe(201);
  });

  it('caps concurrent sessions at MAX_SESSIONS with 429, counting those being created', async () => {
    ctl = await createTestController({ MAX_SESSIONS: '2' });
    const results = await Promise.all(['s1', 's2', 's3'].map((id) => create({ session_id: id })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 201, 429]);
    const refused = results.find((r) => r.statusCode === 429)!;
    expect(refused.json()).toMatchObject({ code: 'TOO_MANY_SESSIONS', max_sessions: 2 });
    const created = results.filter((r) => r.statusCode === 201).map((r) => r.json().session_id);
    await ctl.app.inject({ method: 'DELETE', url: `/sessions/${created[0]}` });
    expect((await create({ session_id: 's4' })).statusCode).toBe(201);
  });

  it('lists sessions and gets one; an unknown one is SESSION_NOT_FOUND', async () => {
    ctl = await createTestController();
    await create({ session_id: 'one' });
    ctl.clock.now += 1000;
    await create({ session_id: 'two', ttl_seconds: 60 });
    const list = await ctl.app.inject({ url: '/sessions' });
    expect(list.json().sessions.map((s: { session_id: string }) => s.session_id)).toEqual(['one', 'two']);
    const one = await ctl.app.inject({ url: '/sessions/two' });
    expect(one.json()).toMatchObject({ session_id: 'two', status: 'running', expires_at: '2025-10-27T22:01:01.000Z' });
    const missing = await ctl.app.inject({ url: '/sessions/nope' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ code: 'SESSION_NOT_FOUND', message: 'no session nope' });
  });

  it('reports a session whose container stopped as stopped', async () => {
    ctl = await createTestController();
    await create({ session_id: 'halt' });
    ctl.runtime.containers.get('sess-halt')!.state = 'stopped';
    expect((await ctl.app.inject({ url: '/sessions/halt' })).json().status).toBe('stopped');
  });

  it('deletes idempotently: container, volumes and folder gone, found says whether there was one', async () => {
    ctl = await createTestController();
    await create({ session_id: 'gone' });
    const first = await ctl.app.inject({ method: 'DELETE', url: '/sessions/gone' });
    expect(first.json()).toEqual({ session_id: 'gone', status: 'deleted', found: true });
    expect(ctl.runtime.containers.size).toBe(0);
    expect(ctl.runtime.volumes.size).toBe(0);
    expect(await exists(join(ctl.socketsDir, 'gone'))).toBe(false);
    const second = await ctl.app.inject({ method: 'DELETE', url: '/sessions/gone' });
    expect(second.statusCode).toBe(200);
    expect(second.json().found).toBe(false);
    expect((await ctl.app.inject({ url: '/sessions/gone' })).statusCode).toBe(404);
  });

  it('fails a start whose agent never gets ready, leaving nothing behind, with the container logs', async () => {
    ctl = await createTestController({ SESSION_START_TIMEOUT_SECONDS: '1' });
    ctl.agents.ready = false;
    ctl.runtime.logs = ['dockerd: failed to start'];
    const res = await create({ session_id: 'slow' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'SESSION_START_FAILED', logs: ['dockerd: failed to start'] });
    expect(ctl.runtime.containers.size).toBe(0);
    expect(ctl.runtime.volumes.size).toBe(0);
    expect(await exists(join(ctl.socketsDir, 'slow'))).toBe(false);
    expect((await ctl.app.inject({ url: '/sessions/slow' })).statusCode).toBe(404);
    const metrics = (await ctl.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^runner_sessions_failed_total 1$/m);
  });

  it('fails a start at once when the inner daemon keeps crashing, saying why', async () => {
    ctl = await createTestController();
    ctl.agents.ready = false;
    const daemon = { ...HEALTHY.daemon, ready: false, restarts: 5, last_error: 'dockerd exited (code 1): open /dev/net/tun: permission denied' };
    ctl.agents.notReadyHealth = { ...HEALTHY, status: 'degraded', daemon };
    const res = await create({ session_id: 'crashy' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'SESSION_START_FAILED', daemon_error: daemon.last_error });
    expect(res.json().message).toMatch(/failed to start 5 times/);
    expect(ctl.runtime.containers.size).toBe(0);
  });

  it('fails a start the engine refuses, leaving nothing behind', async () => {
    ctl = await createTestController();
    ctl.runtime.failNextCreate = new AppError('SESSION_START_FAILED', 'could not start the session container: no such image');
    const res = await create({ session_id: 'broken' });
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toMatch(/no such image/);
    expect(ctl.runtime.volumes.size).toBe(0);
    expect(await exists(join(ctl.socketsDir, 'broken'))).toBe(false);
  });

  it('answers DOCKER_UNAVAILABLE when the engine is down', async () => {
    ctl = await createTestController();
    ctl.runtime.dockerAvailable = false;
    const res = await create({ session_id: 'nodocker' });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('DOCKER_UNAVAILABLE');
  });
});

describe('expiry and extension', () => {
  let ctl: TestController;
  afterEach(async () => ctl?.close());

  it('extends a session from now, and keeps the extension in its state file', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'ext', ttl_seconds: 60 } });
    ctl.clock.now += 30_000;
    const res = await ctl.app.inject({ method: 'POST', url: '/sessions/ext/extend', payload: { ttl_seconds: 600 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ session_id: 'ext', expires_at: '2025-10-27T22:10:30.000Z', status: 'running' });
    const state = JSON.parse(await readFile(join(ctl.socketsDir, 'ext', 'session.json'), 'utf8'));
    expect(state.expires_at).toBe('2025-10-27T22:10:30.000Z');
  });

  it('answers INTERNAL, not a file error of the client, when the host cannot keep the new expiry', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'stuck', ttl_seconds: 60 } });
    // A directory where the state file goes: renaming the new state over it fails with EISDIR on the host.
    await rm(join(ctl.socketsDir, 'stuck', 'session.json'));
    await mkdir(join(ctl.socketsDir, 'stuck', 'session.json', 'in-the-way'), { recursive: true });
    const res = await ctl.app.inject({ method: 'POST', url: '/sessions/stuck/extend', payload: { ttl_seconds: 600 } });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 500, code: 'INTERNAL' });
    expect((await ctl.app.inject({ url: '/sessions/stuck' })).json()).toMatchObject({ expires_at: '2025-10-27T22:01:00.000Z' });
  });

  it('refuses to extend past MAX_TTL_SECONDS or an unknown session', async () => {
    ctl = await createTestController({ MAX_TTL_SECONDS: '3600' });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'ext' } });
    const tooLong = await ctl.app.inject({ method: 'POST', url: '/sessions/ext/extend', payload: { ttl_seconds: 3601 } });
    expect(tooLong.statusCode).toBe(400);
    const unknown = await ctl.app.inject({ method: 'POST', url: '/sessions/nope/extend', payload: { ttl_seconds: 60 } });
    expect(unknown.statusCode).toBe(404);
  });

  it('sweeps a session past its time away with its volumes and folder; GET then answers 404', async () => {
    ctl = await createTestController({ CLEANUP_INTERVAL_SECONDS: '1' });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'brief', ttl_seconds: 5 } });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'stays', ttl_seconds: 600 } });
    ctl.clock.now += 5_000;
    await vi.waitFor(
      async () => {
        expect(ctl.runtime.containers.has('sess-brief')).toBe(false);
        expect(await exists(join(ctl.socketsDir, 'brief'))).toBe(false);
      },
      { timeout: 5_000 },
    );
    expect([...ctl.runtime.volumes.keys()].some((v) => v.startsWith('sess-brief'))).toBe(false);
    expect((await ctl.app.inject({ url: '/sessions/brief' })).statusCode).toBe(404);
    expect((await ctl.app.inject({ url: '/sessions/stays' })).statusCode).toBe(200);
    const metrics = (await ctl.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^runner_sessions_expired_total 1$/m);
  });

  it('keeps the runtime up (on Docker: iptables) at the start, never for a look-up', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'looked-at' } });
    const atStart = ctl.runtime.upkeeps;
    expect(atStart).toBeGreaterThan(0);
    for (const url of ['/sessions', '/sessions', '/sessions/looked-at']) expect((await ctl.app.inject({ url })).statusCode).toBe(200);
    expect(ctl.runtime.upkeeps).toBe(atStart);
  });

  it('keeps the runtime up at every sweep', async () => {
    ctl = await createTestController({ CLEANUP_INTERVAL_SECONDS: '1' });
    const atStart = ctl.runtime.upkeeps;
    await vi.waitFor(() => expect(ctl.runtime.upkeeps).toBeGreaterThan(atStart), { timeout: 5_000 });
  });

  it('answers 404 for a session past its time even before the sweep', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'brief', ttl_seconds: 5 } });
    ctl.clock.now += 5_000;
    expect((await ctl.app.inject({ url: '/sessions/brief' })).statusCode).toBe(404);
    expect((await ctl.app.inject({ url: '/sessions' })).json().sessions).toEqual([]);
  });

  it('lets an expired id be created again', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'again', ttl_seconds: 5 } });
    ctl.clock.now += 6_000;
    const res = await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'again', ttl_seconds: 5 } });
    expect(res.statusCode).toBe(201);
  });
});

describe('restart', () => {
  let ctl: TestController;
  afterEach(async () => ctl?.close());

  it('serves existing sessions again, removes expired ones, and keeps extensions', async () => {
    ctl = await createTestController();
    const post = (id: string, ttl: number) => ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: id, ttl_seconds: ttl } });
    await post('keeps', 600);
    await post('expires', 5);
    await post('extended', 5);
    await ctl.app.inject({ method: 'POST', url: '/sessions/extended/extend', payload: { ttl_seconds: 600 } });
    ctl.clock.now += 10_000;
    const app = await ctl.restart();
    expect((await app.inject({ url: '/sessions/keeps' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/sessions/extended' })).json().expires_at).toBe('2025-10-27T22:10:00.000Z');
    expect((await app.inject({ url: '/sessions/expires' })).statusCode).toBe(404);
    expect(ctl.runtime.containers.has('sess-expires')).toBe(false);
    expect(await exists(join(ctl.socketsDir, 'expires'))).toBe(false);
    expect((await app.inject({ url: '/health' })).json().active_sessions).toBe(2);
  });

  it('removes orphans it owns: volumes and folders without a container, containers without a token', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'live' } });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'tokenless' } });
    ctl.runtime.volumes.set('sess-ghost-workspace', { name: 'sess-ghost-workspace', owner: { kind: 'session', sessionId: 'ghost' } });
    await mkdir(join(ctl.socketsDir, 'ghost', 'agent'), { recursive: true });
    await writeFile(join(ctl.socketsDir, 'tokenless', 'agent', 'token'), '');
    const app = await ctl.restart();
    expect(ctl.runtime.volumes.has('sess-ghost-workspace')).toBe(false);
    expect(await exists(join(ctl.socketsDir, 'ghost'))).toBe(false);
    expect(ctl.runtime.containers.has('sess-tokenless')).toBe(false);
    expect((await app.inject({ url: '/sessions/live' })).statusCode).toBe(200);
  });

  it('leaves alone folders another controller instance owns', async () => {
    ctl = await createTestController({ RUNNER_INSTANCE: 'one' });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'theirs' } });
    ctl.runtime.containers.clear();
    await ctl.restart({ RUNNER_INSTANCE: 'two' });
    expect(await exists(join(ctl.socketsDir, 'theirs', 'session.json'))).toBe(true);
  });

  it('rebuilds a lost state file from the container labels', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'lost', ttl_seconds: 900 } });
    const { rm } = await import('node:fs/promises');
    await rm(join(ctl.socketsDir, 'lost', 'session.json'));
    const app = await ctl.restart();
    expect((await app.inject({ url: '/sessions/lost' })).json().expires_at).toBe('2025-10-27T22:15:00.000Z');
    expect(await exists(join(ctl.socketsDir, 'lost', 'session.json'))).toBe(true);
  });

  it('serves its sessions once Docker answers again after being down at start', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'patient' } });
    ctl.runtime.dockerAvailable = false;
    const app = await ctl.restart();
    const down = await app.inject({ url: '/sessions/patient' });
    expect(down.statusCode).toBe(503);
    expect(down.json().code).toBe('DOCKER_UNAVAILABLE');
    ctl.runtime.dockerAvailable = true;
    expect((await app.inject({ url: '/sessions/patient' })).statusCode).toBe(200);
  });

  it('starts sessions Docker stopped (a host reboot) again', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'reboot' } });
    ctl.runtime.containers.get('sess-reboot')!.state = 'stopped';
    const app = await ctl.restart();
    expect((await app.inject({ url: '/sessions/reboot' })).json().status).toBe('running');
  });
});
