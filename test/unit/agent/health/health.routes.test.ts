import { afterEach, describe, expect, it } from 'vitest';
import { createTestAgent, TEST_TOKEN, type TestAgent } from '../../../helpers/test-agent.js';

describe('health', () => {
  let agent: TestAgent;
  afterEach(async () => agent?.close());

  it('reports healthy with the daemon ready', async () => {
    agent = await createTestAgent();
    const res = await agent.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'healthy', daemon: { ready: true, version: 'fake' }, terminals: 0 });
    expect(res.json().uptime_seconds).toBeGreaterThanOrEqual(0);
  });

  it('reports starting before the daemon first answers, degraded after it stopped', async () => {
    agent = await createTestAgent();
    agent.daemon.state = { ...agent.daemon.state, ready: false, version: null };
    expect((await agent.app.inject({ url: '/health' })).json().status).toBe('starting');
    agent.daemon.state = { ...agent.daemon.state, ready: false, version: '27.0', restarts: 1 };
    expect((await agent.app.inject({ url: '/health' })).json().status).toBe('degraded');
  });

  it('with wait_ready_ms, answers the moment the daemon becomes ready', async () => {
    agent = await createTestAgent();
    agent.daemon.state = { ...agent.daemon.state, ready: false, version: null };
    let answered = false;
    const pending = agent.app.inject({ url: '/health?wait_ready_ms=10000' }).then((res) => {
      answered = true;
      return res;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answered).toBe(false);
    agent.daemon.becomeReady();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'healthy', daemon: { ready: true } });
  });

  it('with wait_ready_ms, answers starting when the daemon is not ready by then', async () => {
    agent = await createTestAgent();
    agent.daemon.state = { ...agent.daemon.state, ready: false, version: null };
    const res = await agent.app.inject({ url: '/health?wait_ready_ms=300' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'starting', daemon: { ready: false } });
  });

  it.each(['-1', '10001', 'soon', '1.5'])('refuses wait_ready_ms=%s with 400 VALIDATION', async (wait) => {
    agent = await createTestAgent();
    const res = await agent.app.inject({ url: `/health?wait_ready_ms=${wait}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('VALIDATION');
  });

  it('requires the bearer token when one is configured', async () => {
    agent = await createTestAgent({ AGENT_TOKEN: TEST_TOKEN });
    const anonymous = await agent.app.inject({ url: '/health' });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().code).toBe('UNAUTHORIZED');
    const wrong = await agent.app.inject({ url: '/health', headers: { authorization: `Bearer ${TEST_TOKEN}x` } });
    expect(wrong.statusCode).toBe(401);
    const right = await agent.app.inject({ url: '/health', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(right.statusCode).toBe(200);
  });

  it('answers an unknown route with ROUTE_NOT_FOUND', async () => {
    agent = await createTestAgent();
    const res = await agent.app.inject({ url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ code: 'ROUTE_NOT_FOUND', message: 'no route GET /nope' });
  });
});
