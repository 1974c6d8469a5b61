import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { probeAgentHealth, waitAgentReady, type ProbeAgent } from '../../../../controller/sessions/agent-probe.js';
import { FakeSessionRuntime } from '../../../helpers/controller-fakes.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

/*
 * A starting session: the controller asks its agent (a real one, on a unix socket) to hold each health answer until
 * the inner daemon is ready, rather than polling every 100 ms, and is answered when the daemon becomes ready.
 */
describe('waiting for a starting agent', () => {
  let agent: TestAgent | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await agent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('asks a few times, each answer held until the daemon is ready, and returns once it is', async () => {
    agent = await createTestAgent();
    dir = await mkdtemp(join(tmpdir(), 'probe-'));
    const socketPath = join(dir, 'agent.sock');
    agent.daemon.state = { ...agent.daemon.state, ready: false, version: null };
    const waits: number[] = [];
    const answers: string[] = [];
    const probe: ProbeAgent = async (socket, token, waitReadyMs) => {
      waits.push(waitReadyMs ?? 0);
      const health = await probeAgentHealth(socket, token, waitReadyMs);
      answers.push(health?.status ?? 'no answer');
      return health;
    };
    const waiting = waitAgentReady({
      probeAgent: probe,
      runtime: new FakeSessionRuntime(),
      endpoint: { kind: 'unix', socketPath },
      token: 'unused',
      containerName: 'probe-test',
      timeoutMs: 30_000,
    });
    // Not listening yet: asked again after a short pause, as before.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await agent.app.listen({ path: socketPath });
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    agent.daemon.becomeReady();
    await waiting;

    expect(answers.at(-1)).toBe('healthy');
    expect(waits.every((w) => w === 2_000)).toBe(true);
    // About 3 s of waiting: a poll every 100 ms would have asked about 30 times once the agent listened.
    expect(answers.filter((a) => a !== 'no answer').length).toBeLessThanOrEqual(3);
  });
});
