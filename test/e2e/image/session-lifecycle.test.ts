import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentHealth } from '../../../shared/schemas/health.js';
import { removeLeftovers, startSession, type SessionContainer } from '../../helpers/session-container.js';

const PREFIX = 'rse2e-life';

describe.sequential('session lifecycle', () => {
  let session: SessionContainer | undefined;
  beforeAll(async () => removeLeftovers(PREFIX));
  afterEach(async () => {
    await session?.remove();
    session = undefined;
  });

  it('ends on docker stop through SIGTERM, stopping the inner daemon and its containers first', async () => {
    session = await startSession({ prefix: PREFIX });
    await session.waitHealthy();
    const run = await session.call('POST', '/run', { image: 'runner-busybox:latest', name: 'sleeper', command: ['sleep', '600'] });
    expect(run.status, JSON.stringify(run.body)).toBe(200);

    await session.container.stop({ t: 10 });
    const { State } = await session.container.inspect();
    // 137 would mean Docker had to SIGKILL it after the grace period.
    expect(State.ExitCode).not.toBe(137);
    expect(State.OOMKilled).toBe(false);
    const logs = await session.logs();
    expect(logs).toContain('stopping dockerd');
    expect(logs).toContain('dockerd stopped');
  });

  it('restarts an inner daemon that dies, and reports the restart; images survive it', async () => {
    session = await startSession({ prefix: PREFIX });
    await session.waitHealthy();
    // The learner owns the rootless daemon, so a learner can kill it too.
    await session.exec(['pkill', '-KILL', '-x', 'dockerd']);
    const health = await vi.waitFor(
      async () => {
        const { body } = await session!.call<AgentHealth>('GET', '/health');
        expect(body.status === 'healthy' && body.daemon.restarts > 0, `the daemon is back: ${JSON.stringify(body)}`).toBe(true);
        return body;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(health.daemon).toMatchObject({ ready: true, restarts: 1, rootless: true });
    const again = await session.exec(['docker', 'run', '--rm', 'runner-busybox:latest', 'echo', 'back']);
    expect(again.stdout.trim()).toBe('back');
  });
});
