import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Label } from '../../../controller/runtime/labels.js';
import { AgentRoute } from '../../../shared/routes.js';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const POOL_SIZE = 2;
const WARM_ROUNDS = 10;
const COLD_ROUNDS = 3;

// GET /health straight on an agent's socket with a token: the status code the agent answers.
async function agentStatus(socketPath: string, token: string): Promise<number> {
  const client = new Client('http://agent', { socketPath });
  try {
    const res = await client.request({ method: 'GET', path: AgentRoute.health, headers: { authorization: `Bearer ${token}` } });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await client.close();
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

describe.sequential('warm pool on real Docker (WARM_POOL_SIZE=2)', () => {
  let ctl: E2EController;

  // The pool's containers (claimed or not) by Docker id, with their names.
  const poolContainers = async (): Promise<Map<string, string>> => {
    const list = await ctl.docker.listContainers({ all: true, filters: { label: [`${Label.instance}=${ctl.config.instance}`, Label.poolId] } });
    return new Map(list.map((c) => [c.Id, (c.Names[0] ?? '').replace(/^\//, '')]));
  };
  const unclaimed = async (): Promise<string[]> => [...(await poolContainers()).values()].filter((name) => name.includes('warm.'));
  // /metrics is Prometheus text for a scraper, not part of the client: read raw.
  const poolReady = async (): Promise<number> => {
    const { body } = await ctl.request('GET', '/metrics');
    return Number(/^runner_warm_pool_ready (\d+)$/m.exec(String(body))?.[1] ?? Number.NaN);
  };
  const waitPoolFull = () => vi.waitFor(async () => expect(await poolReady()).toBe(POOL_SIZE), { timeout: 120_000, interval: 100 });

  beforeAll(async () => {
    await buildImages();
    ctl = await startE2EController({ WARM_POOL_SIZE: String(POOL_SIZE) });
  });

  afterAll(async () => ctl?.destroy());

  it('serves create from a container started before the request, with a fresh token; exec works and the old token is refused', async () => {
    await waitPoolFull();
    const before = await poolContainers();
    // Each member's token before the claim (only the controller ever had them).
    const tokens = new Map<string, string>();
    for (const name of await unclaimed()) {
      const poolId = name.slice(name.indexOf('warm.') + 'warm.'.length);
      tokens.set(poolId, await readFile(join(ctl.config.socketsDir, `warm.${poolId}`, 'agent', 'token'), 'utf8'));
    }
    const requestedAt = Date.now();

    const created = await ctl.client.createSession({ session_id: 'warm-a', ttl_seconds: 600 });
    expect(ctl.lastResponse().status).toBe(201);
    expect(created).toMatchObject({ session_id: 'warm-a', container_name: `${ctl.config.namePrefix}warm-a`, status: 'running' });
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(600 * 1000);

    const info = await ctl.docker.getContainer(`${ctl.config.namePrefix}warm-a`).inspect();
    expect(before.has(info.Id)).toBe(true);
    expect(Date.parse(info.State.StartedAt)).toBeLessThan(requestedAt);
    expect(info.RestartCount).toBe(0);
    const memberName = before.get(info.Id)!;
    const oldToken = tokens.get(info.Config.Labels[Label.poolId]!)!;
    expect(oldToken).toMatch(/^[0-9a-f]{64}$/);

    const hello = await ctl.client.session('warm-a').exec({ command: ['sh', '-c', 'echo hello from $(id -u)'] });
    expect(hello).toMatchObject({ exit_code: 0, logs: ['hello from 1000'] });
    expect(await ctl.client.getSession('warm-a')).toMatchObject({ status: 'running', container_name: `${ctl.config.namePrefix}warm-a` });
    expect((await ctl.client.listSessions()).map((s) => s.session_id)).toEqual(['warm-a']);

    const agent = await ctl.agent('warm-a');
    expect(agent.token).not.toBe(oldToken);
    expect(await agentStatus(agent.socketPath, oldToken)).toBe(401);
    expect(await agentStatus(agent.socketPath, agent.token)).toBe(200);

    // Topped up in the background with a new container; the claimed one is a session now, not a member.
    await waitPoolFull();
    expect(await unclaimed()).toHaveLength(POOL_SIZE);
    expect((await unclaimed()).includes(memberName)).toBe(false);
  });

  it('keeps the claimed session and the same pool containers across a controller restart', async () => {
    await waitPoolFull();
    const members = await unclaimed();
    await ctl.restart();
    expect(await ctl.client.getSession('warm-a')).toMatchObject({ status: 'running', container_name: `${ctl.config.namePrefix}warm-a` });
    // Inside, a claimed session looks like a cold one: the same hostname for all.
    expect(await ctl.client.session('warm-a').exec({ command: ['hostname'] })).toMatchObject({ exit_code: 0, stdout: 'session\n' });
    await waitPoolFull();
    expect((await unclaimed()).sort()).toEqual(members.sort());
    expect((await ctl.client.health()).active_sessions).toBe(1);
  });

  it('comes back when Docker restarts the claimed container (its mount follows the moved folder)', async () => {
    await ctl.docker.getContainer(`${ctl.config.namePrefix}warm-a`).restart({ t: 1 });
    await vi.waitFor(
      async () => {
        expect((await ctl.client.session('warm-a').exec({ command: ['true'] })).exit_code).toBe(0);
      },
      { timeout: 60_000, interval: 250 },
    );
  });

  it('deletes a claimed session with everything it had, and a controller without a pool removes the members', async () => {
    expect(await ctl.client.deleteSession('warm-a')).toEqual({ session_id: 'warm-a', status: 'deleted', found: true });
    await waitPoolFull();
    const left = await ctl.leftovers();
    // Only the pool's own members remain: two containers, their four volumes and two folders.
    expect(left.containers.map((n) => n.replace(/^\//, '')).sort()).toEqual((await unclaimed()).sort());
    expect(left.volumes).toHaveLength(2 * POOL_SIZE);
    expect(left.folders.every((name) => name.startsWith('warm.'))).toBe(true);
    expect(left.folders).toHaveLength(POOL_SIZE);

    await ctl.restart({ WARM_POOL_SIZE: '0' });
    expect(await ctl.leftovers()).toMatchObject({ containers: [], volumes: [], folders: [] });
  });

  it('measures warm create against cold create in the same run', async () => {
    await ctl.restart({ WARM_POOL_SIZE: String(POOL_SIZE) });
    const warm: number[] = [];
    for (let i = 1; i <= WARM_ROUNDS; i++) {
      await waitPoolFull();
      const startedAt = performance.now();
      await ctl.client.createSession({ session_id: `warm-${i}` });
      warm.push(performance.now() - startedAt);
      expect(ctl.lastResponse().status).toBe(201);
      await ctl.client.deleteSession(`warm-${i}`);
    }
    const claims = /^runner_warm_pool_claims_total (\d+)$/m.exec(String((await ctl.request('GET', '/metrics')).body))?.[1];
    expect(Number(claims)).toBe(WARM_ROUNDS);

    await ctl.restart({ WARM_POOL_SIZE: '0' });
    const cold: number[] = [];
    for (let i = 1; i <= COLD_ROUNDS; i++) {
      const startedAt = performance.now();
      await ctl.client.createSession({ session_id: `cold-${i}` });
      cold.push(performance.now() - startedAt);
      expect(ctl.lastResponse().status).toBe(201);
      await ctl.client.deleteSession(`cold-${i}`);
    }
    const fmt = (values: number[]) => values.map((v) => v.toFixed(0)).join(' ');
    console.log(
      `warm create p50 ${median(warm).toFixed(1)} ms (n=${warm.length}: ${fmt(warm)}); ` +
        `cold create p50 ${median(cold).toFixed(0)} ms (n=${cold.length}: ${fmt(cold)})`,
    );
    expect(await ctl.leftovers()).toMatchObject({ containers: [], volumes: [], folders: [] });
  });
});
