import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseControllerConfig } from '../../../../controller/config.js';
import type { SessionOwner } from '../../../../controller/runtime/session-runtime.js';
import { SessionLauncher } from '../../../../controller/sessions/session-launcher.js';
import { SessionStore } from '../../../../controller/sessions/session-store.js';
import { AppError } from '../../../../shared/errors.js';
import { FakeAgents, FakeSessionRuntime, HEALTHY } from '../../../helpers/controller-fakes.js';

const CREATED_AT = new Date('2025-10-27T22:00:00Z');
const AT = CREATED_AT.toISOString();

describe('session launcher', () => {
  let socketsDir: string;
  let store: SessionStore;
  let runtime: FakeSessionRuntime;
  let agents: FakeAgents;
  let launcher: SessionLauncher;

  beforeEach(async () => {
    socketsDir = await mkdtemp(join(tmpdir(), 'launcher-'));
    const config = parseControllerConfig({ SOCKETS_DIR: socketsDir, SESSION_START_TIMEOUT_SECONDS: '1', SESSION_NAME_PREFIX: 'lab-' });
    store = new SessionStore(socketsDir, config.instance);
    runtime = new FakeSessionRuntime();
    agents = new FakeAgents();
    launcher = new SessionLauncher({ config, runtime, store, probeAgent: agents.probe, log: pino({ level: 'silent' }) });
  });
  afterEach(async () => rm(socketsDir, { recursive: true, force: true }));

  const sessionLaunch = (sessionId: string, token = launcher.mintToken()) => {
    const owner = { kind: 'session', sessionId } as const;
    const containerName = launcher.containerName(owner);
    const record = { session_id: sessionId, instance: 'default', container_name: containerName, created_at: AT, expires_at: AT };
    return { owner, containerName, token, record, createdAt: CREATED_AT, expiresAt: CREATED_AT };
  };
  const poolLaunch = (poolId: string, token = launcher.mintToken()) => {
    const owner = { kind: 'pool', poolId } as const;
    const containerName = launcher.containerName(owner);
    return { owner, containerName, token, record: { pool_id: poolId, instance: 'default', container_name: containerName, created_at: AT }, createdAt: CREATED_AT };
  };

  it('names sessions by their id with the prefix (once) and pool members by a name no session id can have', () => {
    expect(launcher.containerName({ kind: 'session', sessionId: 'abc' })).toBe('lab-abc');
    expect(launcher.containerName({ kind: 'session', sessionId: 'lab-abc' })).toBe('lab-abc');
    expect(launcher.containerName({ kind: 'pool', poolId: '0123456789ab' })).toBe('lab-warm.0123456789ab');
  });

  it('mints a new 256-bit token each time', () => {
    const tokens = new Set(Array.from({ length: 20 }, () => launcher.mintToken()));
    expect(tokens.size).toBe(20);
    for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{64}$/);
  });

  it('starts a session and a pool member the same way: folder with token, container on it, agent asked with that token', async () => {
    const asked: Array<{ socketPath: string; token: string }> = [];
    launcher = new SessionLauncher({
      config: parseControllerConfig({ SOCKETS_DIR: socketsDir }),
      runtime,
      store,
      probeAgent: async (endpoint, token) => {
        asked.push({ socketPath: endpoint.kind === 'unix' ? endpoint.socketPath : '', token });
        return HEALTHY;
      },
      log: pino({ level: 'silent' }),
    });
    const cold = sessionLaunch('cold', 'a'.repeat(64));
    const warm = poolLaunch('0123456789ab', 'b'.repeat(64));

    const started = [await launcher.launch(cold), await launcher.launch(warm)];

    expect(started.map((c) => c.owner)).toEqual([cold.owner, warm.owner]);
    expect(runtime.specs.map((s) => [s.owner, s.containerName, s.agentDir, s.expiresAt])).toEqual([
      [cold.owner, 'sess-cold', join(socketsDir, 'cold', 'agent'), CREATED_AT],
      [warm.owner, 'sess-warm.0123456789ab', join(socketsDir, 'warm.0123456789ab', 'agent'), undefined],
    ]);
    expect(asked).toEqual([
      { socketPath: join(socketsDir, 'cold', 'agent', 'agent.sock'), token: cold.token },
      { socketPath: join(socketsDir, 'warm.0123456789ab', 'agent', 'agent.sock'), token: warm.token },
    ]);
    for (const [owner, token] of [
      [cold.owner, cold.token],
      [warm.owner, warm.token],
    ] as [SessionOwner, string][]) {
      expect(await readFile(join(store.agentDir(owner), 'token'), 'utf8')).toBe(token);
      expect((await stat(store.agentDir(owner))).mode & 0o777).toBe(0o700);
    }
    expect(JSON.parse(await readFile(join(socketsDir, 'cold', 'session.json'), 'utf8'))).toEqual(cold.record);
    expect(JSON.parse(await readFile(join(socketsDir, 'warm.0123456789ab', 'pool.json'), 'utf8'))).toEqual(warm.record);
  });

  it('explains a start whose agent never gets ready with the container\'s last lines, for a pool member too', async () => {
    agents.ready = false;
    runtime.logs = ['dockerd: failed to start'];
    for (const launch of [() => launcher.launch(sessionLaunch('slow')), () => launcher.launch(poolLaunch('0123456789ab'))]) {
      const error: AppError = await launch().then(() => expect.fail('started'), (e: AppError) => e);
      expect(error).toBeInstanceOf(AppError);
      expect(error.code).toBe('SESSION_START_FAILED');
      expect(error.details).toMatchObject({ logs: ['dockerd: failed to start'] });
    }
  });

  it('explains a daemon that keeps crashing by its own last error, not by logs', async () => {
    agents.ready = false;
    const daemon = { ...HEALTHY.daemon, ready: false, restarts: 5, last_error: 'open /dev/net/tun: permission denied' };
    agents.notReadyHealth = { ...HEALTHY, status: 'degraded', daemon };
    const error: AppError = await launcher.launch(sessionLaunch('crashy')).then(() => expect.fail('started'), (e: AppError) => e);
    expect(error.details).toEqual({ daemon_error: daemon.last_error });
  });

  it('passes a taken name on as SESSION_EXISTS without logs, and wraps a raw failure as SESSION_START_FAILED', async () => {
    runtime.failNextCreate = new AppError('SESSION_EXISTS', 'a container named lab-taken already exists');
    const taken: AppError = await launcher.launch(sessionLaunch('taken')).then(() => expect.fail('started'), (e: AppError) => e);
    expect(taken.code).toBe('SESSION_EXISTS');
    expect(taken.details).toBeUndefined();

    runtime.createSession = async () => {
      throw new Error('socket hang up');
    };
    runtime.logs = [];
    const raw: AppError = await launcher.launch(sessionLaunch('raw')).then(() => expect.fail('started'), (e: AppError) => e);
    expect(raw).toMatchObject({ code: 'SESSION_START_FAILED', message: 'the session could not be started' });
  });

  it('stops waiting when told to, without explaining', async () => {
    agents.ready = false;
    const closing = new AbortController();
    agents.beforeAnswer = () => closing.abort();
    const error = await launcher.launch({ ...poolLaunch('0123456789ab'), signal: closing.signal }).then(() => expect.fail('started'), (e: Error) => e);
    expect(error).not.toBeInstanceOf(AppError);
    expect(error.name).toBe('AbortError');
  });

  it('runs at most MAX_CONCURRENT_STARTS starts at once and counts those waiting', async () => {
    launcher = new SessionLauncher({
      config: parseControllerConfig({ SOCKETS_DIR: socketsDir, MAX_CONCURRENT_STARTS: '2' }),
      runtime,
      store,
      probeAgent: agents.probe,
      log: pino({ level: 'silent' }),
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const starts = [1, 2, 3].map(() => launcher.inStartSlot(() => gate));
    await vi.waitFor(() => expect(launcher.startCounts()).toEqual({ running: 2, queued: 1 }));
    release();
    await Promise.all(starts);
    expect(launcher.startCounts()).toEqual({ running: 0, queued: 0 });
  });
});
