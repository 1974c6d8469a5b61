import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SessionSpec } from '../../../../controller/runtime/session-runtime.js';
import { createTestController, type TestController } from '../../../helpers/controller-fakes.js';

/*
 * MAX_CONCURRENT_STARTS: a burst of creates starts its sessions a few at a time instead of all at once (where on a
 * small host every one of them would miss the start timeout). Container creation is held at a gate here so that
 * the test sees how many starts run at once.
 */

interface Gate {
  /** Starts inside the runtime right now, and the most there ever were. */
  running: number;
  most: number;
  entered: string[];
  open(): void;
}

function gateCreates(ctl: TestController): Gate {
  const original = ctl.runtime.createSession.bind(ctl.runtime);
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const gate: Gate = { running: 0, most: 0, entered: [], open: () => open() };
  ctl.runtime.createSession = async (spec: SessionSpec) => {
    gate.running += 1;
    gate.most = Math.max(gate.most, gate.running);
    gate.entered.push(spec.owner.kind === 'session' ? spec.owner.sessionId : `pool:${spec.owner.poolId}`);
    try {
      await opened;
      return await original(spec);
    } finally {
      gate.running -= 1;
    }
  };
  return gate;
}

describe('session starts at once (MAX_CONCURRENT_STARTS)', () => {
  let ctl: TestController;
  afterEach(async () => ctl?.close());

  const create = (id: string) => ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: id } });
  const startGauges = async () => {
    const metrics = (await ctl.app.inject({ method: 'GET', url: '/metrics' })).body;
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    return { running: gauge('runner_session_starts_running'), queued: gauge('runner_session_starts_queued') };
  };

  it('starts a burst of creates a few at a time; the others wait as creating and all succeed', async () => {
    ctl = await createTestController({ MAX_CONCURRENT_STARTS: '2' });
    const gate = gateCreates(ctl);
    const ids = ['b1', 'b2', 'b3', 'b4', 'b5'];
    const results = Promise.all(ids.map(create));
    await vi.waitFor(() => expect(gate.entered).toHaveLength(2));
    // Time for a third start to slip through if the limit did not hold.
    await sleep(200);
    expect(gate.entered).toHaveLength(2);
    const { sessions: listed } = (await ctl.app.inject({ method: 'GET', url: '/sessions' })).json();
    expect(listed.map((s: { status: string }) => s.status)).toEqual(ids.map(() => 'creating'));
    expect(await startGauges()).toEqual({ running: 2, queued: 3 });
    gate.open();
    expect((await results).map((r) => r.statusCode)).toEqual(ids.map(() => 201));
    expect(await startGauges()).toEqual({ running: 0, queued: 0 });
    expect(gate.most).toBe(2);
    expect(gate.entered.sort()).toEqual(ids);
  });

  it('counts the start timeout from when a start begins, not from when its create was queued', async () => {
    ctl = await createTestController({ MAX_CONCURRENT_STARTS: '1', SESSION_START_TIMEOUT_SECONDS: '1' });
    const gate = gateCreates(ctl);
    const first = create('first');
    const second = create('second');
    await vi.waitFor(() => expect(gate.entered).toEqual(['first']));
    // The second create now waits longer than the whole start timeout, in the queue.
    await sleep(1_500);
    gate.open();
    expect((await first).statusCode).toBe(201);
    expect((await second).statusCode).toBe(201);
    expect(gate.most).toBe(1);
  });

  it('tops the warm pool up through the same slots as session starts', async () => {
    ctl = await createTestController({ MAX_CONCURRENT_STARTS: '1', WARM_POOL_SIZE: '2' });
    const gate = gateCreates(ctl);
    // The pool fills after start-up: its first member holds the only slot at the gate.
    await ctl.app.inject({ method: 'GET', url: '/sessions' });
    await vi.waitFor(() => expect(gate.entered).toHaveLength(1));
    const cold = create('cold');
    await sleep(200);
    expect(gate.entered).toHaveLength(1);
    gate.open();
    expect((await cold).statusCode).toBe(201);
    expect(gate.most).toBe(1);
    await vi.waitFor(() => expect(gate.entered.filter((e) => e.startsWith('pool:')).length).toBeGreaterThanOrEqual(1));
  });

  it('claims a ready warm session at once while a start holds every slot', async () => {
    ctl = await createTestController({ MAX_CONCURRENT_STARTS: '1', WARM_POOL_SIZE: '2' });
    await vi.waitFor(async () => {
      const metrics = (await ctl.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/runner_warm_pool_ready 2/);
    });
    const gate = gateCreates(ctl);
    expect((await create('first')).statusCode).toBe(201);
    // Claiming the first member starts a top-up, which now holds the only slot at the gate.
    await vi.waitFor(() => expect(gate.entered).toHaveLength(1));
    expect((await create('second')).statusCode).toBe(201);
    expect(gate.entered).toHaveLength(1);
    gate.open();
  });
});
