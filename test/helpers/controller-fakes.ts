import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../controller/app.js';
import { parseControllerConfig, type ControllerConfig } from '../../controller/config.js';
import type { KeptWorkspace, OwnedRuntimeSession, RuntimeSession, RuntimeVolume, SessionOwner, SessionRuntime, SessionSpec } from '../../controller/runtime/session-runtime.js';
import type { ProbeAgent } from '../../controller/sessions/agent-probe.js';
import { AppError } from '../../shared/errors.js';
import type { AgentHealth } from '../../shared/schemas/health.js';

/** An in-memory engine for unit tests of the session lifecycle (e2e tests use real Docker). */
export class FakeSessionRuntime implements SessionRuntime {
  readonly containers = new Map<string, OwnedRuntimeSession>();
  readonly volumes = new Map<string, RuntimeVolume>();
  /** Every spec createSession was given, in order. */
  readonly specs: SessionSpec[] = [];
  dockerAvailable = true;
  /** Makes the next createSession throw this. */
  failNextCreate: AppError | undefined;
  /** Lines tailLogs answers with. */
  logs: string[] = ['agent: starting'];

  async ping(): Promise<boolean> {
    return this.dockerAvailable;
  }

  async createSession(spec: SessionSpec): Promise<RuntimeSession> {
    this.#requireDocker();
    this.specs.push(spec);
    for (const role of ['workspace', 'docker']) {
      const name = `${spec.containerName}-${role}`;
      this.volumes.set(name, { name, owner: spec.owner });
    }
    if (this.failNextCreate) {
      const error = this.failNextCreate;
      this.failNextCreate = undefined;
      throw error;
    }
    const session: OwnedRuntimeSession = {
      owner: spec.owner,
      containerName: spec.containerName,
      state: 'running',
      address: `172.30.0.${this.specs.length + 1}`,
      createdAt: spec.createdAt,
      expiresAt: spec.expiresAt ?? null,
    };
    this.containers.set(spec.containerName, session);
    return { ...session };
  }

  async inspectSession(containerName: string): Promise<RuntimeSession | null> {
    this.#requireDocker();
    const session = this.containers.get(containerName);
    return session ? { ...session } : null;
  }

  /** How many times a reconcile kept the runtime up. */
  upkeeps = 0;

  async upkeep(): Promise<void> {
    this.upkeeps += 1;
  }

  async listSessions(): Promise<OwnedRuntimeSession[]> {
    this.#requireDocker();
    return [...this.containers.values()].map((s) => ({ ...s }));
  }

  async startSession(containerName: string): Promise<void> {
    const session = this.containers.get(containerName);
    if (session) session.state = 'running';
  }

  async removeSession(owner: SessionOwner, containerName: string): Promise<void> {
    this.#requireDocker();
    const owns = (o: { owner: SessionOwner }): boolean => JSON.stringify(o.owner) === JSON.stringify(owner);
    const container = this.containers.get(containerName);
    if (container && owns(container)) this.containers.delete(containerName);
    for (const [name, volume] of this.volumes) if (owns(volume)) this.volumes.delete(name);
  }

  async renameSession(containerName: string, newName: string): Promise<void> {
    this.#requireDocker();
    const session = this.containers.get(containerName);
    if (!session) throw new AppError('DOCKER_ERROR', `no container ${containerName}`);
    if (this.containers.has(newName)) throw new AppError('SESSION_EXISTS', `a container named ${newName} already exists`);
    this.containers.delete(containerName);
    this.containers.set(newName, { ...session, containerName: newName });
  }

  async listVolumes(): Promise<RuntimeVolume[]> {
    this.#requireDocker();
    return [...this.volumes.values()];
  }

  async removeVolume(name: string): Promise<void> {
    this.volumes.delete(name);
    for (const [id, kept] of this.kept) if (kept.volume === name) this.kept.delete(id);
  }

  /** Kept workspaces by session id. */
  readonly kept = new Map<string, KeptWorkspace>();

  async keepWorkspace(owner: SessionOwner, _containerName: string, sessionId: string, until: Date): Promise<KeptWorkspace | null> {
    this.#requireDocker();
    const owned = [...this.volumes.values()].some((v) => JSON.stringify(v.owner) === JSON.stringify(owner));
    if (!owned) return null;
    const kept = { volume: `kept.${sessionId}`, sessionId, until };
    this.kept.set(sessionId, kept);
    return kept;
  }

  async findKeptWorkspace(sessionId: string): Promise<KeptWorkspace | null> {
    return this.kept.get(sessionId) ?? null;
  }

  async listKeptWorkspaces(): Promise<KeptWorkspace[]> {
    return [...this.kept.values()];
  }

  async tailLogs(): Promise<string[]> {
    return this.logs;
  }

  #requireDocker(): void {
    if (!this.dockerAvailable) throw new AppError('DOCKER_UNAVAILABLE', 'Docker is not available (ECONNREFUSED)');
  }
}

/** A probe whose answer the test decides: healthy with the inner daemon ready unless told otherwise. */
export class FakeAgents {
  ready = true;
  /** What a not-ready agent answers; null: it does not answer at all. */
  notReadyHealth: AgentHealth | null = null;
  /** Runs before each answer: a test moves its clock here to make a start slow. */
  beforeAnswer: () => void = () => {};
  readonly probed = new Set<string>();
  readonly probe: ProbeAgent = async (endpoint) => {
    this.probed.add(endpoint.kind === 'unix' ? endpoint.socketPath : `${endpoint.host}:${endpoint.port}`);
    this.beforeAnswer();
    return this.ready ? HEALTHY : this.notReadyHealth;
  };
}

export const HEALTHY: AgentHealth = {
  status: 'healthy',
  uptime_seconds: 1,
  daemon: { ready: true, version: '26.1', rootless: true, supervised: true, restarts: 0, last_error: null },
  terminals: 0,
};

export const CONTROLLER_TEST_TOKEN = 'controller-test-token-0123456789';

export interface TestController {
  app: FastifyInstance;
  config: ControllerConfig;
  runtime: FakeSessionRuntime;
  agents: FakeAgents;
  /** The fake clock in ms; move it forward to expire sessions. */
  clock: { now: number };
  socketsDir: string;
  /** A new app on the same runtime, sockets folder and clock: what a controller restart looks like. */
  restart(env?: Record<string, string>): Promise<FastifyInstance>;
  close(): Promise<void>;
}

/** A controller app on the fake runtime and a fresh sockets folder, configured through the real env parsing. */
export async function createTestController(env: Record<string, string> = {}): Promise<TestController> {
  const socketsDir = await mkdtemp(join(tmpdir(), 'ctl-'));
  const runtime = new FakeSessionRuntime();
  const agents = new FakeAgents();
  const clock = { now: Date.parse('2025-10-27T22:00:00Z') };
  let config = parseControllerConfig({ SOCKETS_DIR: socketsDir, ...env });
  const build = async (): Promise<FastifyInstance> => {
    const app = await buildApp({ config, runtime, probeAgent: agents.probe, now: () => clock.now });
    await app.ready();
    return app;
  };
  const controller: TestController = {
    app: await build(),
    config,
    runtime,
    agents,
    clock,
    socketsDir,
    async restart(more = {}) {
      await controller.app.close();
      config = parseControllerConfig({ SOCKETS_DIR: socketsDir, ...env, ...more });
      controller.config = config;
      controller.app = await build();
      return controller.app;
    },
    async close() {
      // A test may have closed it already (shutdown tests): Fastify's close is then a no-op.
      await controller.app.close();
      await rm(socketsDir, { recursive: true, force: true });
    },
  };
  return controller;
}
