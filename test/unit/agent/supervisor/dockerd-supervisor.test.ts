import { chmod, chown, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseAgentConfig } from '../../../../agent/config.js';
import { DockerdSupervisor, type DockerdSupervisorOptions } from '../../../../agent/supervisor/dockerd-supervisor.js';

const LEARNER = 1000;

/**
 * A stand-in for dockerd-rootless.sh: serves /_ping, /info and /images/load on the socket it is given, records
 * what it saw in its state folder, and behaves as its mode says: `ok`, `crash` (exits at once), `stubborn`
 * (ignores SIGTERM).
 */
const FAKE_DAEMON = String.raw`
const fs = require('node:fs');
const http = require('node:http');
const [socketPath, stateDir, mode] = process.argv.slice(2);
const configFile = process.argv[process.argv.indexOf('--config-file') + 1];
const record = (name, line) => fs.appendFileSync(stateDir + '/' + name, line + '\n');
record('starts', JSON.stringify({ uid: process.getuid(), env: Object.keys(process.env).sort(), configFile }));
fs.writeFileSync(stateDir + '/pid', String(process.pid));
if (mode === 'crash') {
  console.error('failed to start daemon: pretend kernel says no');
  process.exit(1);
}
const server = http.createServer((req, res) => {
  if (req.url === '/_ping') return res.end('OK');
  if (req.url.startsWith('/info') || req.url.match(/^\/v[\d.]+\/info/)) {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ ServerVersion: 'fake-27', SecurityOptions: ['name=seccomp', 'name=rootless'] }));
  }
  if (req.url.includes('/images/load')) {
    let bytes = 0;
    req.on('data', (c) => (bytes += c.length));
    req.on('end', () => {
      record('loads', String(bytes));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ stream: 'Loaded image: fake:latest\n' }) + '\n');
    });
    return;
  }
  res.statusCode = 404;
  res.end('{}');
});
try { fs.unlinkSync(socketPath); } catch {}
server.listen(socketPath);
process.on('SIGTERM', () => {
  if (mode === 'stubborn') return;
  record('terminated', 'yes');
  server.close();
  process.exit(0);
});
`;

interface Harness {
  supervisor: DockerdSupervisor;
  stateDir: string;
  configDir: string;
  dataRoot: string;
  root: string;
}

describe('dockerd supervisor', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startHarness(
    mode: 'ok' | 'crash' | 'stubborn',
    env: Record<string, string> = {},
    options: DockerdSupervisorOptions = {},
  ): Promise<Harness> {
    const root = await realpath(await mkdtemp(join(tmpdir(), 'supervisor-test-')));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    await chmod(root, 0o755);
    const stateDir = join(root, 'state');
    const preloadDir = join(root, 'preload');
    const home = join(root, 'home');
    for (const dir of [stateDir, preloadDir, home]) {
      await mkdir(dir);
      await chown(dir, LEARNER, LEARNER);
    }
    await writeFile(join(preloadDir, 'b.tar'), 'second image');
    await writeFile(join(preloadDir, 'a.tar'), 'first image bytes');
    await writeFile(join(preloadDir, 'notes.txt'), 'not an image');
    const script = join(root, 'fake-dockerd.cjs');
    await writeFile(script, FAKE_DAEMON, { mode: 0o755 });
    const socketPath = join(root, 'run', 'docker.sock');
    const config = parseAgentConfig({
      AGENT_SOCKET: join(root, 'agent.sock'),
      AGENT_SUPERVISE_DOCKERD: 'true',
      AGENT_LEARNER_UID: String(LEARNER),
      AGENT_LEARNER_GID: String(LEARNER),
      AGENT_LEARNER_HOME: home,
      AGENT_PRELOAD_DIR: preloadDir,
      AGENT_TOKEN: 'secret-token-that-must-not-leak',
      DOCKER_HOST: `unix://${socketPath}`,
      ...env,
    });
    const configDir = join(root, 'config');
    const dataRoot = join(root, 'data');
    const supervisor = new DockerdSupervisor(config, pino({ level: 'silent' }), {
      command: [process.execPath, script, socketPath, stateDir, mode],
      configDir,
      dataRoot,
      tunDevice: null,
      backoff: { initialMs: 50, maxMs: 400, resetAfterMs: 60_000 },
      stopTimeoutMs: 500,
      ...options,
    });
    cleanups.push(() => supervisor.close());
    return { supervisor, stateDir, configDir, dataRoot, root };
  }

  const lines = async (file: string): Promise<string[]> =>
    existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter(Boolean) : [];

  it('starts the daemon as the learner with a clean environment and reports it ready and rootless', async () => {
    const { supervisor, stateDir } = await startHarness('ok');
    await supervisor.waitReady(10_000);
    expect(supervisor.health()).toEqual({
      ready: true,
      version: 'fake-27',
      rootless: true,
      supervised: true,
      restarts: 0,
      last_error: null,
    });
    const [start] = await lines(join(stateDir, 'starts'));
    const seen = JSON.parse(start!) as { uid: number; env: string[] };
    expect(seen.uid).toBe(LEARNER);
    expect(seen.env).toEqual(['HOME', 'LANG', 'LOGNAME', 'PATH', 'USER', 'XDG_RUNTIME_DIR']);
  });

  it('writes a daemon.json with overlay2, capped logs, its data root and the registry mirror', async () => {
    const { supervisor, configDir, dataRoot } = await startHarness('ok', { AGENT_REGISTRY_MIRROR: 'http://mirror.test:5000' });
    await supervisor.waitReady(10_000);
    const daemonJson = JSON.parse(await readFile(join(configDir, 'daemon.json'), 'utf8'));
    expect(daemonJson).toMatchObject({
      'data-root': dataRoot,
      'storage-driver': 'overlay2',
      'log-driver': 'json-file',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
      'registry-mirrors': ['http://mirror.test:5000'],
    });
  });

  it('loads every preload tarball once, and not again after the daemon restarts', async () => {
    const { supervisor, stateDir } = await startHarness('ok');
    await supervisor.waitReady(10_000);
    expect(await lines(join(stateDir, 'loads'))).toEqual(['17', '12']);

    process.kill(Number(await readFile(join(stateDir, 'pid'), 'utf8')), 'SIGKILL');
    await vi.waitFor(() => expect(supervisor.health(), 'the restarted daemon').toMatchObject({ restarts: 1, ready: true }), { timeout: 10_000, interval: 25 });
    expect(await lines(join(stateDir, 'starts'))).toHaveLength(2);
    expect(await lines(join(stateDir, 'loads'))).toEqual(['17', '12']);
  });

  it('restarts a daemon that keeps dying, with backoff, and reports the restarts and its last words', async () => {
    const { supervisor, stateDir } = await startHarness('crash');
    await vi.waitFor(() => expect(supervisor.health().restarts, 'three restarts').toBeGreaterThanOrEqual(3), { timeout: 10_000, interval: 25 });
    const health = supervisor.health();
    expect(health.ready).toBe(false);
    expect(health.last_error).toContain('pretend kernel says no');
    await expect(supervisor.waitReady(100)).rejects.toThrow(/pretend kernel says no/);
    // Backoff: 50, 100, 200, 400 ms… so a second has room for a handful of starts, not dozens.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await lines(join(stateDir, 'starts'))).length).toBeLessThan(8);
  });

  it('stops the daemon on close and does not start it again', async () => {
    const { supervisor, stateDir } = await startHarness('ok');
    await supervisor.waitReady(10_000);
    const pid = Number(await readFile(join(stateDir, 'pid'), 'utf8'));
    await supervisor.close();
    expect(await lines(join(stateDir, 'terminated'))).toEqual(['yes']);
    expect(() => process.kill(pid, 0)).toThrow();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await lines(join(stateDir, 'starts'))).toHaveLength(1);
  });

  it('kills a daemon that ignores SIGTERM once the stop timeout passes', async () => {
    const { supervisor, stateDir } = await startHarness('stubborn');
    await supervisor.waitReady(10_000);
    const pid = Number(await readFile(join(stateDir, 'pid'), 'utf8'));
    await supervisor.close();
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await lines(join(stateDir, 'terminated'))).toEqual([]);
  });

  it('owns the data root and runtime folder for the learner', async () => {
    const { supervisor, dataRoot, root } = await startHarness('ok');
    await supervisor.waitReady(10_000);
    const { stat } = await import('node:fs/promises');
    expect((await stat(dataRoot)).uid).toBe(LEARNER);
    const runtime = await stat(join(root, 'run'));
    expect(runtime.uid).toBe(LEARNER);
    expect(runtime.mode & 0o777).toBe(0o700);
  });
});

describe('token file (the session image keeps its token out of every environment)', () => {
  it('reads and trims the token from AGENT_TOKEN_FILE', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'token-test-'));
    try {
      await writeFile(join(dir, 'token'), 'a-token-of-enough-length\n', { mode: 0o600 });
      const config = parseAgentConfig({ AGENT_SOCKET: '/tmp/s', AGENT_TOKEN_FILE: join(dir, 'token') });
      expect(config.token).toBe('a-token-of-enough-length');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['missing', undefined, /AGENT_TOKEN_FILE: cannot read/],
    ['short', 'short\n', /AGENT_TOKEN_FILE: token must be at least 16 characters/],
  ])('refuses a %s token file, naming the variable', async (_name, content, message) => {
    const dir = await mkdtemp(join(tmpdir(), 'token-test-'));
    try {
      if (content !== undefined) await writeFile(join(dir, 'token'), content);
      expect(() => parseAgentConfig({ AGENT_SOCKET: '/tmp/s', AGENT_TOKEN_FILE: join(dir, 'token') })).toThrow(message);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
