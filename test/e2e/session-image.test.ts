import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeLeftovers, startSession, type SessionContainer } from '../helpers/session-container.js';

const PREFIX = 'rse2e-image';

describe.sequential('session image', () => {
  let session: SessionContainer;

  beforeAll(async () => {
    await removeLeftovers(PREFIX);
    session = await startSession({ prefix: PREFIX });
    await session.waitHealthy();
  });
  afterAll(async () => session?.remove());

  it('reports healthy with a ready rootless inner daemon', async () => {
    const res = await session.call<Record<string, unknown>>('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'healthy',
      daemon: { ready: true, rootless: true, supervised: true, last_error: null },
    });
  });

  it('refuses a request without the token', async () => {
    const { Agent, request } = await import('undici');
    const dispatcher = new Agent({ connect: { socketPath: session.socketPath } });
    const res = await request('http://session/health', { dispatcher });
    expect(res.statusCode).toBe(401);
    await res.body.dump();
    await dispatcher.close();
  });

  it('has the preloaded busybox in the inner daemon', async () => {
    const res = await session.exec(['docker', 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(res.stdout.split('\n')).toContain('runner-busybox:latest');
  });

  it('reports rootless from docker info inside, as the learner', async () => {
    const res = await session.exec(['docker', 'info', '--format', '{{json .SecurityOptions}} {{.Driver}}']);
    expect(res.exit_code).toBe(0);
    expect(res.stdout).toContain('name=rootless');
    expect(res.stdout).toContain('overlay2');
  });
});
