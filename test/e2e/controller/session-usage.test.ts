import { mkdtemp } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SessionUsage } from '../../../shared/schemas/session.js';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';
import { removeSessionDisks } from '../../helpers/session-disks.js';

const MIB = 2 ** 20;
const WAIT = { timeout: 30_000, interval: 250 };
// Figures are read again after a second, and a session's volumes walked again after a second.
const FAST_USAGE = { USAGE_TTL_SECONDS: '1', USAGE_DISK_WALK_SECONDS: '1' };

async function usageOf(ctl: E2EController, id: string): Promise<SessionUsage> {
  const session = await ctl.client.getSession(id);
  if (!session.usage) throw new Error(`no usage on ${id}: ${JSON.stringify(session)}`);
  return session.usage;
}

/** The samples of a gauge for one session in a /metrics scrape. */
async function gaugeSamples(ctl: E2EController, id: string): Promise<string[]> {
  const { status, body } = await ctl.request('GET', '/metrics');
  expect(status).toBe(200);
  return String(body)
    .split('\n')
    .filter((line) => line.startsWith('runner_session_') && line.includes(`session_id="${id}"`));
}

/** Waits until the session's usage passes `check`; returns that usage. */
function waitForUsage(ctl: E2EController, id: string, check: (usage: SessionUsage) => boolean, what: string): Promise<SessionUsage> {
  return vi.waitFor(async () => {
    const usage = await usageOf(ctl, id);
    if (!check(usage)) throw new Error(`${what}: ${JSON.stringify(usage)}`);
    return usage;
  }, WAIT);
}

describe.sequential('usage per session (two Docker volumes)', () => {
  let ctl: E2EController;
  const id = 'usage';

  beforeAll(async () => {
    await buildImages();
    ctl = await startE2EController(FAST_USAGE);
    await ctl.client.createSession({ session_id: id });
  }, 300_000);

  afterAll(async () => {
    await ctl?.destroy();
  }, 120_000);

  it('reports memory, its limit, CPU, processes and disk of a running session, on GET and in the list', async () => {
    const usage = await waitForUsage(ctl, id, (u) => u.disk_bytes !== null, 'the first walk of the volumes');
    expect(usage.memory_bytes).toBeGreaterThan(10 * MIB);
    expect(usage.memory_limit_bytes).toBe(ctl.config.memoryBytes);
    expect(usage.cpu_seconds).toBeGreaterThan(0);
    // tini, the agent, the inner daemon and its helpers at least.
    expect(usage.pids).toBeGreaterThanOrEqual(3);
    expect(usage.pids).toBeLessThanOrEqual(ctl.config.pidsLimit);
    expect(Date.parse(usage.measured_at)).not.toBeNaN();
    const listed = (await ctl.client.listSessions()).find((s) => s.session_id === id);
    expect(listed?.usage?.memory_bytes).toBeGreaterThan(10 * MIB);
  });

  it('sees memory grow while a process holds 100 MiB, and its processes counted', async () => {
    const before = await usageOf(ctl, id);
    const stream = ctl.client.session(id).execStream({
      // Something after the sleep keeps bash (and its 100 MiB) alive: a last command would replace it by exec. Ten
      // sleeps more: the session's own count moves by a few on its own (threads, spare exec processes).
      command: ['bash', '-c', 'x=$(head -c 100M /dev/zero | tr "\\0" a); for i in $(seq 10); do sleep 120 & done; echo ready; sleep 120; echo "${#x}"'],
      timeout_seconds: 150,
    });
    try {
      for (let next = await stream.next(); !next.done; next = await stream.next()) {
        if (next.value.type === 'stdout' && next.value.data.includes('ready')) break;
      }
      // The stream stays open: the agent ends an exec whose client went away.
      const during = await waitForUsage(ctl, id, (u) => (u.memory_bytes ?? 0) > (before.memory_bytes ?? 0) + 90 * MIB, 'memory of the 100 MiB process');
      expect(during.pids).toBeGreaterThanOrEqual((before.pids ?? 0) + 8);
    } finally {
      await stream.return(undefined);
    }
  });

  it('sees CPU time grow after work inside', async () => {
    const before = await usageOf(ctl, id);
    const result = await ctl.client.session(id).exec({ command: ['bash', '-c', 'head -c 256M /dev/zero | sha256sum'] });
    expect(result.exit_code).toBe(0);
    await waitForUsage(ctl, id, (u) => (u.cpu_seconds ?? 0) > (before.cpu_seconds ?? 0) + 0.2, 'CPU time of hashing 256 MiB');
  });

  it('sees disk grow after a 50 MiB file is written into the workspace', async () => {
    const before = await usageOf(ctl, id);
    const result = await ctl.client.session(id).exec({ command: ['bash', '-c', 'head -c 50M /dev/urandom > /workspace/blob && sync'] });
    expect(result.exit_code).toBe(0);
    await waitForUsage(ctl, id, (u) => (u.disk_bytes ?? 0) >= (before.disk_bytes ?? 0) + 50 * MIB, 'disk of the 50 MiB file');
  });

  it('exposes the figures as gauges labelled by session id in /metrics, and drops them when the session goes', async () => {
    const samples = await gaugeSamples(ctl, id);
    const names = samples.map((line) => line.split('{')[0]);
    expect(names.sort()).toEqual([
      'runner_session_cpu_seconds',
      'runner_session_disk_bytes',
      'runner_session_memory_bytes',
      'runner_session_memory_limit_bytes',
      'runner_session_pids',
    ]);
    const memory = samples.find((line) => line.startsWith('runner_session_memory_bytes{'));
    expect(Number(memory?.split(' ')[1])).toBeGreaterThan(10 * MIB);

    expect((await ctl.client.deleteSession(id)).found).toBe(true);
    expect(await gaugeSamples(ctl, id)).toEqual([]);
  });
});

describe.sequential('usage per session (its own filesystem)', () => {
  let ctl: E2EController;
  let diskDir: string;
  const id = 'usage-disk';

  beforeAll(async () => {
    diskDir = await mkdtemp('/tmp/rtusage-disks-');
    ctl = await startE2EController({ ...FAST_USAGE, SESSION_DISK_LIMIT: '1g', SESSION_DISK_DIR: diskDir });
    await ctl.client.createSession({ session_id: id });
  }, 300_000);

  afterAll(async () => {
    await ctl?.destroy();
    await removeSessionDisks(diskDir);
  }, 120_000);

  it('reads disk_bytes from the filesystem at once (no walk), and sees it grow', async () => {
    const before = await usageOf(ctl, id);
    expect(before.disk_bytes).toBeGreaterThan(0);
    const result = await ctl.client.session(id).exec({ command: ['bash', '-c', 'head -c 50M /dev/urandom > /workspace/blob && sync'] });
    expect(result.exit_code).toBe(0);
    await waitForUsage(ctl, id, (u) => (u.disk_bytes ?? 0) >= (before.disk_bytes ?? 0) + 50 * MIB, 'disk of the 50 MiB file');
  });
});

describe.sequential('usage per session (claimed from the warm pool)', () => {
  let ctl: E2EController;
  const id = 'usage-warm';

  beforeAll(async () => {
    ctl = await startE2EController({ ...FAST_USAGE, WARM_POOL_SIZE: '1' });
    await vi.waitFor(async () => {
      const { body } = await ctl.request('GET', '/metrics');
      if (!/^runner_warm_pool_ready 1$/m.test(String(body))) throw new Error('no ready pool member yet');
    }, { timeout: 120_000, interval: 250 });
    await ctl.client.createSession({ session_id: id });
  }, 300_000);

  afterAll(async () => {
    await ctl?.destroy();
  }, 120_000);

  it('reports the usage of the renamed pool container under the session, and none for the pool members', async () => {
    const { body } = await ctl.request('GET', '/metrics');
    expect(String(body)).toMatch(/^runner_warm_pool_claims_total 1$/m);
    const usage = await waitForUsage(ctl, id, (u) => u.disk_bytes !== null, 'the first walk of the volumes');
    expect(usage.memory_bytes).toBeGreaterThan(10 * MIB);
    expect(usage.pids).toBeGreaterThanOrEqual(3);
    const series = String((await ctl.request('GET', '/metrics')).body)
      .split('\n')
      .filter((line) => line.startsWith('runner_session_memory_bytes{'));
    expect(series.map((line) => line.split(' ')[0])).toEqual([`runner_session_memory_bytes{session_id="${id}"}`]);
  });
});
