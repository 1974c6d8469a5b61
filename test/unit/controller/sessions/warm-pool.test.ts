import { access, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../../../controller/app.js';
import { parseControllerConfig } from '../../../../controller/config.js';
import type { SessionOwner } from '../../../../controller/runtime/session-runtime.js';
import type { ProbeAgent } from '../../../../controller/sessions/agent-probe.js';
import type { AgentHealth } from '../../../../shared/schemas/health.js';
import { FakeSessionRuntime, HEALTHY } from '../../../helpers/controller-fakes.js';

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Agents as the session image runs them: one answers only the token in its token file (the real agent reads the
 * file again on a token it does not know). A container the pool started is told by the pool.json in its folder
 * (which a claimed one keeps); tests hold such agents back, slow their claim, or break it.
 */
class FileTokenAgents {
  /** While false, warm pool members do not answer (they are still starting). */
  warmReady = true;
  /** When set, a pool-started agent's first probe with a new token (a claim's) waits for this: a slow claim. */
  claimGate: Promise<void> | null = null;
  /** A pool-started agent never answers a new token: the claim fails. */
  failClaims = false;
  readonly probes: Array<{ socketPath: string; token: string }> = [];
  readonly probe: ProbeAgent = async (endpoint, token) => {
    const socketPath = endpoint.kind === 'unix' ? endpoint.socketPath : '';
    this.probes.push({ socketPath, token });
    const folder = dirname(dirname(socketPath));
    const pooled = await exists(join(folder, 'pool.json'));
    if (pooled && !this.warmReady) return null;
    const current = await readFile(join(dirname(socketPath), 'token'), 'utf8').catch(() => '');
    if (current !== token) return null;
    // Asked by its session's path: a claim (the pool itself asks by the warm.<pool id> path).
    const claim = pooled && !basename(folder).startsWith('warm.');
    if (claim && this.failClaims) return null;
    if (claim && this.claimGate) await this.claimGate;
    return HEALTHY satisfies AgentHealth;
  };
}

interface PoolController {
  app: FastifyInstance;
  runtime: FakeSessionRuntime;
  agents: FileTokenAgents;
  clock: { now: number };
  socketsDir: string;
  restart(env?: Record<string, string>): Promise<FastifyInstance>;
  close(): Promise<void>;
}

// The controller on the fake runtime, as createTestController makes it, with agents that check their token file.
async function startController(env: Record<string, string>): Promise<PoolController> {
  const socketsDir = await mkdtemp(join(tmpdir(), 'ctl-warm-'));
  const runtime = new FakeSessionRuntime();
  const agents = new FileTokenAgents();
  const clock = { now: Date.parse('2025-10-27T22:00:00Z') };
  const build = async (more: Record<string, string> = {}): Promise<FastifyInstance> => {
    const config = parseControllerConfig({ SOCKETS_DIR: socketsDir, ...env, ...more });
    const app = await buildApp({ config, runtime, probeAgent: agents.probe, now: () => clock.now });
    await app.ready();
    return app;
  };
  const ctl: PoolController = {
    app: await build(),
    runtime,
    agents,
    clock,
    socketsDir,
    async restart(more = {}) {
      await ctl.app.close();
      ctl.app = await build(more);
      return ctl.app;
    },
    async close() {
      await ctl.app.close();
      await rm(socketsDir, { recursive: true, force: true });
    },
  };
  return ctl;
}

const metric = async (app: FastifyInstance, name: string): Promise<number> => {
  const body = (await app.inject({ url: '/metrics' })).body;
  const match = new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(body);
  return match ? Number(match[1]) : Number.NaN;
};

const waitPoolReady = (ctl: PoolController, ready: number): Promise<void> =>
  vi.waitFor(async () => expect(await metric(ctl.app, 'runner_warm_pool_ready')).toBe(ready), { timeout: 5_000, interval: 10 });

// The pool id or session id a spec, container or volume is labelled with.
const poolIdOf = (x?: { owner: SessionOwner | null }): string | undefined => (x?.owner?.kind === 'pool' ? x.owner.poolId : undefined);
const sessionIdOf = (x?: { owner: SessionOwner | null }): string | undefined => (x?.owner?.kind === 'session' ? x.owner.sessionId : undefined);
const poolContainers = (ctl: PoolController) => [...ctl.runtime.containers.values()].filter((c) => poolIdOf(c));
const unclaimedPool = (ctl: PoolController) => poolContainers(ctl).filter((c) => c.containerName.includes('warm.'));

describe('WARM_POOL_SIZE', () => {
  it('is 0 (off) by default and must be a whole number no larger than MAX_SESSIONS', () => {
    expect(parseControllerConfig({}).warmPoolSize).toBe(0);
    expect(parseControllerConfig({ WARM_POOL_SIZE: '3' }).warmPoolSize).toBe(3);
    expect(() => parseControllerConfig({ WARM_POOL_SIZE: '-1' })).toThrow(/WARM_POOL_SIZE/);
    expect(() => parseControllerConfig({ WARM_POOL_SIZE: 'two' })).toThrow(/WARM_POOL_SIZE/);
    expect(() => parseControllerConfig({ WARM_POOL_SIZE: '5', MAX_SESSIONS: '4' })).toThrow(/WARM_POOL_SIZE: must not exceed MAX_SESSIONS/);
  });
});

describe('warm pool', () => {
  let ctl: PoolController;
  afterEach(async () => ctl?.close());

  const create = (body: object) => ctl.app.inject({ method: 'POST', url: '/sessions', payload: body });

  it('starts WARM_POOL_SIZE sessions ahead that are not listed, not active and labelled by pool id only', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '2' });
    await waitPoolReady(ctl, 2);
    expect(ctl.runtime.specs).toHaveLength(2);
    for (const spec of ctl.runtime.specs) {
      expect(spec).toMatchObject({ owner: { kind: 'pool', poolId: expect.stringMatching(/^[0-9a-f]{12}$/) }, containerName: `sess-warm.${poolIdOf(spec)}` });
      expect(spec.expiresAt).toBeUndefined();
      expect(spec.agentDir).toBe(join(ctl.socketsDir, `warm.${poolIdOf(spec)}`, 'agent'));
    }
    expect((await ctl.app.inject({ url: '/sessions' })).json()).toEqual({ sessions: [] });
    expect((await ctl.app.inject({ url: '/health' })).json().active_sessions).toBe(0);
    expect(await metric(ctl.app, 'runner_warm_pool_size')).toBe(2);
    expect(await metric(ctl.app, 'runner_sessions_active')).toBe(0);
  });

  it('is off by default: no container starts ahead and create is cold', async () => {
    ctl = await startController({});
    await create({ session_id: 'cold' });
    expect(ctl.runtime.specs.map((s) => sessionIdOf(s))).toEqual(['cold']);
    expect(await metric(ctl.app, 'runner_warm_pool_misses_total')).toBe(0);
  });

  it('serves POST /sessions from a ready member without starting a container, with a new token, then tops up', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const [member] = ctl.runtime.specs;
    const poolId = poolIdOf(member)!;
    const poolToken = await readFile(join(ctl.socketsDir, `warm.${poolId}`, 'agent', 'token'), 'utf8');

    const res = await create({ session_id: 'fast', ttl_seconds: 600 });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({
      session_id: 'fast',
      container_name: 'sess-fast',
      status: 'running',
      created_at: '2025-10-27T22:00:00.000Z',
      expires_at: '2025-10-27T22:10:00.000Z',
    });
    // The member's container, renamed: no container was made for the session.
    expect(ctl.runtime.specs.filter((s) => sessionIdOf(s) === 'fast')).toHaveLength(0);
    expect(ctl.runtime.containers.get('sess-fast')).toMatchObject({ owner: { kind: 'pool', poolId } });

    const folder = join(ctl.socketsDir, 'fast');
    const token = await readFile(join(folder, 'agent', 'token'), 'utf8');
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(token).not.toBe(poolToken);
    expect(JSON.parse(await readFile(join(folder, 'session.json'), 'utf8'))).toMatchObject({
      session_id: 'fast',
      container_name: 'sess-fast',
      pool_id: poolId,
      expires_at: '2025-10-27T22:10:00.000Z',
    });
    // The old folder name points at the session's folder: the container's bind mount still resolves on a restart.
    expect((await lstat(join(ctl.socketsDir, `warm.${poolId}`))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(ctl.socketsDir, `warm.${poolId}`))).toBe('fast');
    // The agent was asked with the new token before the answer: from then on it refuses the old one.
    expect(ctl.agents.probes.filter((p) => p.socketPath.startsWith(folder)).map((p) => p.token)).toEqual([token]);

    await waitPoolReady(ctl, 1);
    expect(ctl.runtime.specs).toHaveLength(2);
    expect((await ctl.app.inject({ url: '/sessions' })).json().sessions.map((s: { session_id: string }) => s.session_id)).toEqual(['fast']);
    expect(await metric(ctl.app, 'runner_warm_pool_claims_total')).toBe(1);
    expect(await metric(ctl.app, 'runner_warm_pool_claim_seconds_count')).toBe(1);
    expect(await metric(ctl.app, 'runner_sessions_created_total')).toBe(1);
  });

  it('starts cold when no member is ready yet, and counts a miss', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    ctl.agents.warmReady = false;
    await ctl.restart();
    const res = await create({ session_id: 'early' });
    expect(res.statusCode).toBe(201);
    expect(ctl.runtime.containers.get('sess-early')).toMatchObject({ owner: { kind: 'session', sessionId: 'early' } });
        expect(await metric(ctl.app, 'runner_warm_pool_misses_total')).toBe(1);
    expect(await metric(ctl.app, 'runner_warm_pool_claims_total')).toBe(0);
  });

  it('removes a member that does not answer at its claim and starts the session cold', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const poolId = poolIdOf(ctl.runtime.specs[0])!;
    ctl.agents.failClaims = true;
    const res = await create({ session_id: 'fallback' });
    expect(res.statusCode).toBe(201);
    expect(ctl.runtime.containers.get('sess-fallback')).toMatchObject({ owner: { kind: 'session', sessionId: 'fallback' } });
    expect([...ctl.runtime.containers.values()].some((c) => poolIdOf(c) === poolId)).toBe(false);
    expect([...ctl.runtime.volumes.values()].some((v) => poolIdOf(v) === poolId)).toBe(false);
    expect(await exists(join(ctl.socketsDir, `warm.${poolId}`))).toBe(false);
    expect(JSON.parse(await readFile(join(ctl.socketsDir, 'fallback', 'session.json'), 'utf8')).pool_id).toBeUndefined();
    expect(await metric(ctl.app, 'runner_warm_pool_failures_total')).toBe(1);
    await waitPoolReady(ctl, 1);
  });

  it('gives two concurrent creates two different containers, never one member twice', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const [a, b] = await Promise.all([create({ session_id: 'one' }), create({ session_id: 'two' })]);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    const claimed = ['one', 'two'].filter((id) => poolIdOf(ctl.runtime.containers.get(`sess-${id}`)) === poolIdOf(ctl.runtime.specs[0]));
    const cold = ['one', 'two'].filter((id) => sessionIdOf(ctl.runtime.containers.get(`sess-${id}`)) === id);
    expect([claimed.length, cold.length]).toEqual([1, 1]);
    expect(await metric(ctl.app, 'runner_warm_pool_claims_total')).toBe(1);
    expect(await metric(ctl.app, 'runner_warm_pool_misses_total')).toBe(1);
  });

  it('refuses a second create of the same id without using up a member', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '2' });
    await waitPoolReady(ctl, 2);
    const [a, b] = await Promise.all([create({ session_id: 'same' }), create({ session_id: 'same' })]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([201, 409]);
    expect(await metric(ctl.app, 'runner_warm_pool_claims_total')).toBe(1);
    await waitPoolReady(ctl, 2);
    expect(ctl.runtime.specs).toHaveLength(3);
  });

  it('deletes a claimed session with its container, pool-named volumes, folder and link; the pool stays full', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const poolId = poolIdOf(ctl.runtime.specs[0])!;
    await create({ session_id: 'gone' });
    const deleted = await ctl.app.inject({ method: 'DELETE', url: '/sessions/gone' });
    expect(deleted.json()).toEqual({ session_id: 'gone', status: 'deleted', found: true });
    expect(ctl.runtime.containers.has('sess-gone')).toBe(false);
    expect([...ctl.runtime.volumes.values()].some((v) => poolIdOf(v) === poolId)).toBe(false);
    expect(await exists(join(ctl.socketsDir, 'gone'))).toBe(false);
    expect(await lstat(join(ctl.socketsDir, `warm.${poolId}`)).catch(() => null)).toBeNull();
    await waitPoolReady(ctl, 1);
    expect(unclaimedPool(ctl)).toHaveLength(1);
    expect((await ctl.app.inject({ method: 'DELETE', url: '/sessions/gone' })).json().found).toBe(false);
  });

  it('expires a claimed session by its TTL like a cold one, but never a pool member', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1', CLEANUP_INTERVAL_SECONDS: '1' });
    await waitPoolReady(ctl, 1);
    await create({ session_id: 'brief', ttl_seconds: 5 });
    await waitPoolReady(ctl, 1);
    const member = unclaimedPool(ctl)[0]!;
    ctl.clock.now += 3_600_000;
    await vi.waitFor(() => expect(ctl.runtime.containers.has('sess-brief')).toBe(false), { timeout: 5_000 });
    expect(await exists(join(ctl.socketsDir, 'brief'))).toBe(false);
    expect(await metric(ctl.app, 'runner_sessions_expired_total')).toBe(1);
    expect(ctl.runtime.containers.get(member.containerName)).toBeDefined();
    expect(await metric(ctl.app, 'runner_warm_pool_ready')).toBe(1);
  });

  it('extends a claimed session and keeps its pool id in the state', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const poolId = poolIdOf(ctl.runtime.specs[0])!;
    await create({ session_id: 'longer', ttl_seconds: 60 });
    const res = await ctl.app.inject({ method: 'POST', url: '/sessions/longer/extend', payload: { ttl_seconds: 900 } });
    expect(res.json()).toMatchObject({ expires_at: '2025-10-27T22:15:00.000Z', status: 'running' });
    expect(JSON.parse(await readFile(join(ctl.socketsDir, 'longer', 'session.json'), 'utf8'))).toMatchObject({ pool_id: poolId });
  });

  it('grows the pool only while sessions and pool together fit in MAX_SESSIONS', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '2', MAX_SESSIONS: '2' });
    await waitPoolReady(ctl, 2);
    await create({ session_id: 'first' });
    await waitPoolReady(ctl, 1);
    await create({ session_id: 'second' });
    await waitPoolReady(ctl, 0);
    expect(ctl.runtime.containers.size).toBe(2);
    expect((await create({ session_id: 'third' })).statusCode).toBe(429);
    await ctl.app.inject({ method: 'DELETE', url: '/sessions/first' });
    await waitPoolReady(ctl, 1);
  });

  it('does not let a sweep during a slow claim take the member for the pool or for an orphan', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1', CLEANUP_INTERVAL_SECONDS: '1' });
    await waitPoolReady(ctl, 1);
    const poolId = poolIdOf(ctl.runtime.specs[0])!;
    let open = () => {};
    ctl.agents.claimGate = new Promise((resolve) => {
      open = resolve;
    });
    const pending = create({ session_id: 'slow' });
    await vi.waitFor(() => expect(ctl.agents.probes.some((p) => p.socketPath.includes('/slow/'))).toBe(true));
    // Two sweeps run while the claim waits for the agent.
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    open();
    ctl.agents.claimGate = null;
    expect((await pending).statusCode).toBe(201);
    await ctl.app.inject({ url: '/sessions/slow' }).then((r) => expect(r.json().status).toBe('running'));
    expect(ctl.runtime.containers.get('sess-slow')).toMatchObject({ owner: { kind: 'pool', poolId } });
    expect([...ctl.runtime.volumes.values()].filter((v) => poolIdOf(v) === poolId)).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(ctl.runtime.containers.get('sess-slow')).toMatchObject({ owner: { kind: 'pool', poolId } });
    expect((await ctl.app.inject({ url: '/sessions' })).json().sessions).toHaveLength(1);
    await waitPoolReady(ctl, 1);
  });
});

describe('warm pool across a controller restart', () => {
  let ctl: PoolController;
  afterEach(async () => ctl?.close());

  const create = (body: object) => ctl.app.inject({ method: 'POST', url: '/sessions', payload: body });

  it('keeps a claimed session as that session and adopts the ready members instead of starting new ones', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '2' });
    await waitPoolReady(ctl, 2);
    await create({ session_id: 'stays', ttl_seconds: 600 });
    await waitPoolReady(ctl, 2);
    const made = ctl.runtime.specs.length;
    const app = await ctl.restart();
    await waitPoolReady(ctl, 2);
    expect(ctl.runtime.specs).toHaveLength(made);
    expect((await app.inject({ url: '/sessions/stays' })).json()).toMatchObject({ status: 'running', container_name: 'sess-stays', expires_at: '2025-10-27T22:10:00.000Z' });
    expect((await app.inject({ url: '/sessions' })).json().sessions).toHaveLength(1);
    expect((await app.inject({ url: '/health' })).json().active_sessions).toBe(1);
    // Still claimable after the restart, and deletable with everything it had.
    expect((await create({ session_id: 'after' })).statusCode).toBe(201);
    expect(ctl.runtime.specs).toHaveLength(made);
    for (const id of ['stays', 'after']) expect((await app.inject({ method: 'DELETE', url: `/sessions/${id}` })).json().found).toBe(true);
    await waitPoolReady(ctl, 2);
    expect(ctl.runtime.containers.size).toBe(2);
    expect(ctl.runtime.volumes.size).toBe(4);
  });

  it('finishes a claim a crash interrupted after its state was written', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const member = unclaimedPool(ctl)[0]!;
    const poolId = poolIdOf(member)!;
    // The claim's commit point, and nothing after it: folder not moved, container not renamed.
    await writeFile(
      join(ctl.socketsDir, `warm.${poolId}`, 'session.json'),
      JSON.stringify({
        session_id: 'crashed',
        instance: 'default',
        container_name: 'sess-crashed',
        created_at: '2025-10-27T22:00:00.000Z',
        expires_at: '2025-10-27T23:00:00.000Z',
        pool_id: poolId,
      }),
    );
    const app = await ctl.restart();
    expect((await app.inject({ url: '/sessions/crashed' })).json()).toMatchObject({ container_name: 'sess-crashed', status: 'running' });
    expect(ctl.runtime.containers.get('sess-crashed')).toMatchObject({ owner: { kind: 'pool', poolId } });
    expect(await readlink(join(ctl.socketsDir, `warm.${poolId}`))).toBe('crashed');
    expect(await exists(join(ctl.socketsDir, 'crashed', 'agent', 'token'))).toBe(true);
    // The pool replaces what became a session.
    await waitPoolReady(ctl, 1);
    expect(unclaimedPool(ctl)).toHaveLength(1);
  });

  it('removes the members a smaller pool has no room for, and every member with WARM_POOL_SIZE=0', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '2' });
    await waitPoolReady(ctl, 2);
    await ctl.restart({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    expect(poolContainers(ctl)).toHaveLength(1);
    await ctl.restart({ WARM_POOL_SIZE: '0' });
    expect(ctl.runtime.containers.size).toBe(0);
    expect(ctl.runtime.volumes.size).toBe(0);
    expect(await readdir(ctl.socketsDir)).toEqual([]);
  });

  it('replaces a member that stopped and removes pool leftovers without a container', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    const stopped = unclaimedPool(ctl)[0]!;
    stopped.state = 'stopped';
    ctl.runtime.containers.set(stopped.containerName, stopped);
    ctl.runtime.volumes.set('sess-warm.0123456789ab-workspace', { name: 'sess-warm.0123456789ab-workspace', owner: { kind: 'pool', poolId: '0123456789ab' } });
    await mkdir(join(ctl.socketsDir, 'warm.0123456789ab', 'agent'), { recursive: true });
    await ctl.restart();
    await waitPoolReady(ctl, 1);
    expect(ctl.runtime.containers.has(stopped.containerName)).toBe(false);
    expect(ctl.runtime.volumes.has('sess-warm.0123456789ab-workspace')).toBe(false);
    expect(await exists(join(ctl.socketsDir, 'warm.0123456789ab'))).toBe(false);
    expect(await exists(join(ctl.socketsDir, `warm.${poolIdOf(stopped)}`))).toBe(false);
  });

  it('leaves members running when it closes', async () => {
    ctl = await startController({ WARM_POOL_SIZE: '1' });
    await waitPoolReady(ctl, 1);
    await ctl.app.close();
    expect(unclaimedPool(ctl)).toHaveLength(1);
    expect(unclaimedPool(ctl)[0]!.state).toBe('running');
  });
});
