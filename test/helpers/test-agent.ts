import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildApp } from '../../agent/app.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config.js';
import { createDockerClient } from '../../core/docker/docker-client.js';
import type { DaemonMonitor } from '../../agent/supervisor/daemon-monitor.js';
import { ReadyWaiters } from '../../agent/supervisor/ready-waiters.js';
import type { ExecResult } from '../../shared/schemas/exec.js';
import type { DaemonHealth } from '../../shared/schemas/health.js';

export const LEARNER_UID = 1000;

let builtLearnerExec: string | undefined;
/** learner-exec built on this host (image/build-learner-exec.sh: compiled once, again when its source changes). */
export function hostLearnerExec(): string {
  if (!builtLearnerExec) {
    const root = join(import.meta.dirname, '..', '..');
    execFileSync('bash', [join(root, 'image/build-learner-exec.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    builtLearnerExec = join(root, '.build/learner-exec/learner-exec');
  }
  return builtLearnerExec;
}
export const TEST_TOKEN = 'test-token-0123456789abcdef';

/** A daemon monitor for unit tests that never touch Docker. */
export class FakeDaemonMonitor implements DaemonMonitor {
  state: DaemonHealth = { ready: true, version: 'fake', rootless: true, supervised: false, restarts: 0, last_error: null };
  readonly #waiters = new ReadyWaiters();
  health(): DaemonHealth {
    return this.state;
  }
  async waitReady(timeoutMs: number): Promise<void> {
    if (!this.state.ready) await this.#waiters.wait(timeoutMs, () => 'not ready');
  }
  /** The daemon answers from now on: waiters wake. */
  becomeReady(): void {
    this.state = { ...this.state, ready: true, version: this.state.version ?? 'fake' };
    this.#waiters.wakeAll();
  }
  async close(): Promise<void> {}
}

export interface TestAgent {
  app: FastifyInstance;
  /** The workspace folder (real path), owned by the learner uid. */
  workspace: string;
  /** A folder beside the workspace, for checking that nothing outside it is touched. */
  outside: string;
  config: AgentConfig;
  daemon: FakeDaemonMonitor;
  close(): Promise<void>;
}

/**
 * An agent app on a fresh temporary workspace, configured through the same environment parsing as `npm run
 * agent`. Pass `env` to override settings; the Docker client points at DOCKER_HOST (the host engine by default).
 */
export async function createTestAgent(env: Record<string, string> = {}, logger?: FastifyBaseLogger): Promise<TestAgent> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'agent-test-')));
  // The learner must be able to reach its workspace by absolute path, as in a session.
  await chmod(root, 0o755);
  const workspace = join(root, 'workspace');
  const outside = join(root, 'outside');
  await mkdir(workspace);
  await mkdir(outside);
  await chown(workspace, LEARNER_UID, LEARNER_UID);
  const config = parseAgentConfig({
    AGENT_WORKSPACE: workspace,
    AGENT_SOCKET: join(root, 'agent.sock'),
    AGENT_LEARNER_UID: String(LEARNER_UID),
    AGENT_LEARNER_GID: String(LEARNER_UID),
    AGENT_LEARNER_EXEC: hostLearnerExec(),
    ...env,
  });
  const daemon = new FakeDaemonMonitor();
  const app = await buildApp({ config, docker: createDockerClient(config.dockerHost), daemon, logger });
  await app.ready();
  return {
    app,
    workspace,
    outside,
    config,
    daemon,
    async close() {
      await app.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** `POST /exec` with `body` on a test agent, expected to answer 200: its result. */
export async function execOnAgent(agent: TestAgent, body: object): Promise<ExecResult> {
  const res = await agent.app.inject({ method: 'POST', url: '/exec', payload: body });
  if (res.statusCode !== 200) throw new Error(`POST /exec answered ${res.statusCode}: ${res.body}`);
  return res.json();
}
