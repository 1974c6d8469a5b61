import { afterEach, describe, expect, it } from 'vitest';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../helpers/controller-fakes.js';

describe('controller HTTP', () => {
  let ctl: TestController;
  afterEach(async () => ctl?.close());

  it('answers /health exactly as the seed', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'h1' } });
    const res = await ctl.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'healthy', active_sessions: 1, docker_available: true });
  });

  it('reports Docker down on /health with 503', async () => {
    ctl = await createTestController();
    ctl.runtime.dockerAvailable = false;
    const res = await ctl.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'unhealthy', active_sessions: 0, docker_available: false });
  });

  it('requires the bearer token on every route but /health when one is configured', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    const auth = { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}` };
    expect((await ctl.app.inject({ url: '/health' })).statusCode).toBe(200);
    for (const [method, url] of [
      ['GET', '/sessions'],
      ['POST', '/sessions'],
      ['GET', '/sessions/x'],
      ['DELETE', '/sessions/x'],
      ['POST', '/sessions/x/extend'],
      ['POST', '/sessions/x/exec'],
      ['GET', '/metrics'],
      ['GET', '/nowhere'],
    ] as const) {
      const anonymous = await ctl.app.inject({ method, url });
      expect(anonymous.statusCode, `${method} ${url}`).toBe(401);
      expect(anonymous.json().code).toBe('UNAUTHORIZED');
    }
    const wrong = await ctl.app.inject({ url: '/sessions', headers: { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}x` } });
    expect(wrong.statusCode).toBe(401);
    expect((await ctl.app.inject({ url: '/sessions', headers: auth })).statusCode).toBe(200);
    const created = await ctl.app.inject({ method: 'POST', url: '/sessions', headers: auth, payload: { session_id: 'authed' } });
    expect(created.statusCode).toBe(201);
  });

  it('serves Prometheus metrics: sessions, create latency, errors by code', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'm1' } });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'm1' } });
    await ctl.app.inject({ method: 'DELETE', url: '/sessions/m1' });
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'm2' } });
    const res = await ctl.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^runner_sessions_active 1$/m);
    expect(res.body).toMatch(/^runner_sessions_created_total 2$/m);
    expect(res.body).toMatch(/^runner_sessions_deleted_total 1$/m);
    expect(res.body).toMatch(/^runner_session_create_seconds_count 2$/m);
    expect(res.body).toMatch(/^runner_errors_total\{code="SESSION_EXISTS"\} 1$/m);
    expect(res.body).toContain('# TYPE runner_proxy_request_seconds histogram');
  });

  it('answers SESSION_NOT_FOUND for the agent routes of an unknown session', async () => {
    ctl = await createTestController();
    const res = await ctl.app.inject({ method: 'POST', url: '/sessions/nope/exec', payload: { command: ['true'] } });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('SESSION_NOT_FOUND');
  });

  it('answers an unknown route with ROUTE_NOT_FOUND', async () => {
    ctl = await createTestController();
    const res = await ctl.app.inject({ url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('ROUTE_NOT_FOUND');
  });
});
