import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { open, rm, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { rawRequest } from '../helpers/http-client.js';
import { TEST_SESSION_IMAGE } from '../helpers/session-image.js';
import { TEST_DOCKER_ENV, testDocker } from '../helpers/test-engine.js';
import { waitUntil } from '../helpers/wait-until.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * Ctrl-C in the terminal that ran `npm start` sends SIGINT to its whole process group. The controller stops; the
 * Docker engine (started by scripts/ensure-docker.sh in a session of its own, or already running) and every
 * session keep running. `npm start` runs here exactly as the README says, under the suite's test-only instance,
 * port, network and sockets folder.
 */

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ID = 'ctrl-c';

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether any process of the group `pgid` is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.sequential('Ctrl-C of npm start', () => {
  // Its names, folders and clean-up; the process itself is `npm start`, spawned below.
  const names = hardeningController();
  let npm: ChildProcess | undefined;
  let log: FileHandle | undefined;
  let port = 0;
  
  beforeAll(async () => {
    await buildImages();
    await sweepHardeningLeftovers();
    port = await freePort();
    log = await open(`${names.logFile}.npm`, 'w');
    npm = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      // Its own process group, as a terminal gives a command it runs.
      detached: true,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        PORT: String(port),
        RUNNER_API_TOKEN: names.token,
        RUNNER_INSTANCE: names.instance,
        SESSION_NETWORK: names.network,
        SESSION_NAME_PREFIX: names.config.namePrefix,
        SOCKETS_DIR: names.socketsDir,
        SESSION_IMAGE: TEST_SESSION_IMAGE,
        SESSION_DISK_LIMIT: '0',
        ...TEST_DOCKER_ENV,
      },
      stdio: ['ignore', log.fd, log.fd],
    });
  });

  afterAll(async () => {
    if (npm?.pid && groupAlive(npm.pid)) process.kill(-npm.pid, 'SIGKILL');
    await names.destroy();
    await log?.close();
    await rm(`${names.logFile}.npm`, { force: true });
  });

  it('stops the controller and leaves the engine and the session running', async () => {
    // Raw: the probes count no answer at all (status 0) while `npm start` comes and goes.
    const request = (method: string, path: string, body?: unknown) => rawRequest(port, method, path, { token: names.token, body, timeoutMs: 300_000 });
    await waitUntil('npm start serves the API', async () => ((await request('GET', '/health')).status === 200 ? true : undefined), 300_000, 500);
    expect((await request('POST', '/sessions', { session_id: ID })).status).toBe(201);
    const container = testDocker.getContainer(names.containerName(ID));
    expect((await container.inspect()).State.Running).toBe(true);

    const exited = once(npm!, 'exit');
    process.kill(-npm!.pid!, 'SIGINT');
    await exited;
    await waitUntil('every process of npm start has ended', async () => (groupAlive(npm!.pid!) ? undefined : true), 30_000);
    expect((await request('GET', '/health')).status).toBe(0);

    expect(await testDocker.ping().then(() => true, () => false)).toBe(true);
    expect((await container.inspect()).State.Running).toBe(true);
  });
});
