import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TEST_SESSION_IMAGE } from '../helpers/session-image.js';
import { buildImages } from '../helpers/controller-e2e.js';
import { RunnerError } from '../../client/src/index.js';
import { isAlive } from '../helpers/docker-sweep.js';
import { runnerError } from '../helpers/runner-error.js';
import { testDocker } from '../helpers/test-engine.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * Restarting the Docker engine under running sessions. Other work shares the host's engine, so this test starts a
 * private dockerd of its own (own socket, data root, exec root, cgroup parent and bridge; no iptables rules), loads the session image into it, points a controller at it with DOCKER_HOST, and restarts that engine
 * the way `systemctl restart docker` does (SIGTERM, start again). The controller's code path is the same as with
 * the host's engine.
 */

const run = promisify(execFile);
const ENGINE_PREFIX = 'rthard-engine-';
const ENGINE_BRIDGE_ADDRESS = '10.213.0.1/24';

/** The private engine's default bridge (at most 15 characters, as Linux wants). */
function engineBridge(pid: number): string {
  return `rtbr${pid}`;
}

class PrivateEngine {
  readonly runDir = `/run/${ENGINE_PREFIX}${process.pid}`;
  readonly dataRoot = `/var/lib/${ENGINE_PREFIX}${process.pid}`;
  readonly socket = `${this.runDir}/docker.sock`;
  readonly docker = new Docker({ socketPath: this.socket });
  #child: ChildProcess | undefined;
  #log: FileHandle | undefined;

  async start(): Promise<void> {
    await mkdir(this.runDir, { recursive: true });
    // A bridge of its own: with `--bridge=none`, or with `--default-address-pool` on a restart, dockerd deletes the
    // interface named docker0 at start, which is the host engine's.
    const bridge = engineBridge(process.pid);
    await run('ip', ['link', 'add', bridge, 'type', 'bridge']).catch(() => {}); // kept from the first start
    await run('ip', ['addr', 'replace', ENGINE_BRIDGE_ADDRESS, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
    this.#log ??= await open(`${this.runDir}.log`, 'a');
    const child = spawn(
      'dockerd',
      [
        `--host=unix://${this.socket}`,
        `--data-root=${this.dataRoot}`,
        `--exec-root=${this.runDir}/x`,
        `--pidfile=${this.runDir}/docker.pid`,
        `--bridge=${bridge}`,
        '--iptables=false',
        '--ip-masq=false',
        `--cgroup-parent=${ENGINE_PREFIX}${process.pid}`,
      ],
      { stdio: ['ignore', this.#log.fd, this.#log.fd] },
    );
    this.#child = child;
    await vi.waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`dockerd exited with ${child.exitCode}: ${await this.logTail()}`);
        await this.docker.ping();
      },
      { timeout: 60_000, interval: 250 },
    );
  }

  /** SIGTERM, as a service manager stops it: the engine stops its containers and exits. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(killer);
  }

  async logTail(): Promise<string> {
    return (await readFile(`${this.runDir}.log`, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
  }

  async destroy(): Promise<void> {
    await this.stop();
    await this.#log?.close().catch(() => {});
    await removeEngineFiles(process.pid);
  }
}

async function removeEngineFiles(pid: number): Promise<void> {
  await rm(`/run/${ENGINE_PREFIX}${pid}`, { recursive: true, force: true });
  await rm(`/run/${ENGINE_PREFIX}${pid}.log`, { force: true });
  await rm(`/var/lib/${ENGINE_PREFIX}${pid}`, { recursive: true, force: true });
  await run('ip', ['link', 'del', engineBridge(pid)]).catch(() => {}); // already gone
}

/** Stops and removes private engines of earlier runs that crashed. */
async function sweepStaleEngines(): Promise<void> {
  for (const name of await readdir('/run')) {
    const pid = Number(name.slice(ENGINE_PREFIX.length).replace(/\.log$/, ''));
    if (!name.startsWith(ENGINE_PREFIX) || pid === process.pid || isAlive(pid)) continue;
    const daemon = Number(await readFile(`/run/${name}/docker.pid`, 'utf8').catch(() => ''));
    if (isAlive(daemon)) {
      process.kill(daemon, 'SIGTERM');
      await vi.waitFor(() => expect(isAlive(daemon), `the stale engine ${daemon} stops`).toBe(false), { timeout: 60_000, interval: 500 });
    }
    await removeEngineFiles(pid);
  }
}

function figure(text: string): void {
  console.info(`[hardening] ${text}`);
}

describe.sequential('a Docker engine restart', () => {
  const engine = new PrivateEngine();
  const ctl = hardeningController({ docker: engine.docker, env: { DOCKER_HOST: `unix://${engine.socket}`, CLEANUP_INTERVAL_SECONDS: '2' } });

  beforeAll(async () => {
    await sweepStaleEngines();
    await sweepHardeningLeftovers();
    await buildImages();
    await engine.start();
    const started = performance.now();
    await engine.docker.loadImage(await testDocker.getImage(TEST_SESSION_IMAGE).get());
    figure(`engine restart: session image loaded into the private engine in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await ctl.start();
  });

  afterAll(async () => {
    await ctl.destroy();
    await engine.destroy();
  });

  it('brings sessions back after the engine restarts, or ends them cleanly and says so', async () => {
    const id = 'engine';
    await ctl.createSession(id);
    const lab = ctl.client.session(id);
    await lab.writeFile('/workspace/keep.txt', 'kept');
    expect(ctl.lastResponse().status).toBe(201);

    await engine.stop();
    // While the engine is away every answer says so, none hangs. /health raw: its 503 body is health, not an error.
    expect((await ctl.request('GET', '/health')).body).toMatchObject({ status: 'unhealthy', docker_available: false });
    expect(await runnerError(ctl.client.getSession(id))).toMatchObject({ status: 503, code: 'DOCKER_UNAVAILABLE' });
    expect(await runnerError(lab.exec({ command: ['true'] }))).toMatchObject({ status: 502, code: 'AGENT_UNAVAILABLE' });

    await engine.start();
    expect(ctl.alive).toBe(true);
    const started = performance.now();
    const outcome = await vi.waitFor(
      async () => {
        const again = await lab.exec({ command: ['cat', '/workspace/keep.txt'] }).catch((error: Error) => error);
        if (!(again instanceof Error)) return { back: true, stdout: again.stdout };
        const info = await ctl.client.getSession(id).catch((error: unknown) => error);
        if (info instanceof RunnerError && info.status === 404) return { back: false, stdout: '' };
        const state = info instanceof RunnerError ? `${info.status} ${info.code} ${info.message}` : JSON.stringify(info);
        throw new Error(`the session is neither back nor reported gone: it stays ${state}`);
      },
      { timeout: 60_000, interval: 250 },
    );
    const seconds = (performance.now() - started) / 1000;
    figure(`engine restart: session ${outcome.back ? 'back' : 'ended'} ${seconds.toFixed(1)} s after the engine answered again`);
    if (outcome.back) expect(outcome.stdout).toBe('kept');
    else expect(await ctl.leftovers()).toMatchObject({ containers: [], volumes: [], folders: [] });
  });
});
