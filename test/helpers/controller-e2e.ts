import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type Docker from 'dockerode';
import { RunnerClient } from '../../client/src/index.js';
import { buildApp } from '../../controller/app.js';
import { parseControllerConfig, type ControllerConfig } from '../../controller/config.js';
import { DockerSessionRuntime } from '../../controller/runtime/docker-session-runtime.js';
import { SessionStore } from '../../controller/sessions/session-store.js';
import { Label } from '../../controller/runtime/labels.js';
import { removeNetwork } from './docker-sweep.js';
import { TEST_SESSION_IMAGE } from './session-image.js';
import { TEST_DOCKER_ENV, testDocker } from './test-engine.js';

const run = promisify(execFile);

/** Builds the session image (and what it needs) the way the README does; skips what is up to date. */
export async function buildImages(): Promise<void> {
  await run('bash', ['scripts/build-images.sh'], { maxBuffer: 64 * 1024 * 1024 });
}

export interface E2EController {
  /** `http://127.0.0.1:<port>` of the running controller. */
  url: string;
  app: FastifyInstance;
  config: ControllerConfig;
  docker: Docker;
  /**
   * Sends a request like curl would; JSON in, JSON (or text) out (typed loosely, as inject's `json()`). Carries
   * the controller's bearer token when it has one; `headers` are added (and may replace it).
   */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: ReturnType<JSON['parse']> }>;
  /** The typed client a backend uses, with the controller's token: for well-formed calls (`request` sends anything). */
  readonly client: RunnerClient;
  /**
   * The status and headers of the client's last answer: the client gives bodies, and 201 against 200 or a
   * content-type are part of the API too.
   */
  lastResponse(): { status: number; headers: Headers };
  /** `Authorization` for the controller's token (empty without one), for clients other than `request`. */
  authHeaders(): Record<string, string>;
  /** A session's agent as the controller reaches it (its unix socket and own token), to compare with direct access. */
  agent(sessionId: string): Promise<{ socketPath: string; token: string }>;
  /** Closes the controller (sessions keep running) and starts a new one on the same Docker and folders. */
  restart(env?: Record<string, string>): Promise<void>;
  /** Closes the controller only. */
  stop(): Promise<void>;
  /** Ids of the sessions this controller has containers for, expired ones included. */
  sessionIds(): Promise<string[]>;
  /** What of this controller's exists in Docker and on disk: containers, volumes, network, session folders. */
  leftovers(): Promise<{ containers: string[]; volumes: string[]; network: boolean; folders: string[] }>;
  /** Stops the controller and removes every container, volume, network and folder of this test controller. */
  destroy(): Promise<void>;
}

let counter = 0;

/**
 * A real controller on a loopback port with the real Docker runtime, under a test-only instance label, name
 * prefix, network and sockets folder, so it never touches a developer's sessions and is easy to sweep away.
 */
export async function startE2EController(env: Record<string, string> = {}): Promise<E2EController> {
  const tag = `${process.pid.toString(36)}${(counter += 1)}`;
  const socketsDir = await mkdtemp('/tmp/rte2e-');
  const baseEnv = {
    SOCKETS_DIR: socketsDir,
    RUNNER_INSTANCE: `e2e-${tag}`,
    SESSION_NETWORK: `rte2e-${tag}`,
    // Two checkouts testing on one engine set RUNNER_TEST_NAME_PREFIX apart, so fixed session ids never collide.
    SESSION_NAME_PREFIX: process.env.RUNNER_TEST_NAME_PREFIX ?? 'rte2e-',
    PORT: '0',
    LOG_LEVEL: 'silent',
    SESSION_IMAGE: TEST_SESSION_IMAGE,
    // Two Docker volumes per session, as the suites assert; the disk limit's own tests turn it on.
    SESSION_DISK_LIMIT: '0',
    ...TEST_DOCKER_ENV,
  };
  const docker = testDocker;
  let config = parseControllerConfig({ ...baseEnv, ...env });
  const sockets = new Set<Socket>();
  const start = async (): Promise<FastifyInstance> => {
    const app = await buildApp({ config, runtime: new DockerSessionRuntime(docker, config, pino({ level: 'silent' })) });
    app.server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    return app;
  };
  let app = await start();
  let lastResponse = { status: 0, headers: new Headers() };
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    lastResponse = { status: response.status, headers: response.headers };
    return response;
  };
  const ownLabel = `${Label.instance}=${config.instance}`;
  const controller: E2EController = {
    get url() {
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    },
    get app() {
      return app;
    },
    get config() {
      return config;
    },
    docker,
    get client() {
      return new RunnerClient({ baseUrl: controller.url, token: config.apiToken, fetch: recordingFetch });
    },
    lastResponse: () => lastResponse,
    async request(method, path, body, headers = {}) {
      const res = await fetch(`${controller.url}${path}`, {
        method,
        headers: { ...controller.authHeaders(), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON (metrics): the text as it came.
      }
      return { status: res.status, body: parsed };
    },
    authHeaders(): Record<string, string> {
      return config.apiToken ? { authorization: `Bearer ${config.apiToken}` } : {};
    },
    async agent(sessionId) {
      const store = new SessionStore(config.socketsDir, config.instance);
      const token = await store.readToken({ kind: 'session', sessionId });
      if (!token) throw new Error(`session ${sessionId} has no agent token`);
      return { socketPath: store.agentSocketPath({ kind: 'session', sessionId }), token };
    },
    async restart(more = {}) {
      await app.close();
      config = parseControllerConfig({ ...baseEnv, ...env, ...more });
      app = await start();
    },
    async stop() {
      await app.close();
    },
    async sessionIds() {
      const containers = await docker.listContainers({ all: true, filters: { label: [ownLabel] } });
      return containers.map((c) => c.Labels[Label.sessionId] ?? '').filter(Boolean);
    },
    async leftovers() {
      const containers = await docker.listContainers({ all: true, filters: { label: [ownLabel] } });
      const { Volumes } = await docker.listVolumes({ filters: { label: [ownLabel] } });
      const networks = await docker.listNetworks({ filters: { name: [config.network] } });
      const folders = await readdir(socketsDir).catch(() => []);
      return {
        containers: containers.map((c) => c.Names[0] ?? c.Id),
        volumes: (Volumes ?? []).map((v) => v.Name),
        network: networks.some((n) => n.Name === config.network),
        folders,
      };
    },
    async destroy() {
      const closing = app.close();
      // Teardown must not wait on a connection the app lost track of (a refused WebSocket upgrade kept open).
      for (const socket of sockets) socket.destroy();
      await closing.catch(() => {});
      const containers = await docker.listContainers({ all: true, filters: { label: [ownLabel] } });
      await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
      const { Volumes } = await docker.listVolumes({ filters: { label: [ownLabel] } });
      await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => {})));
      await removeNetwork(docker, config.network);
      await rm(socketsDir, { recursive: true, force: true });
    },
  };
  return controller;
}

