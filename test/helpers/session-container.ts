import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { Agent, request } from 'undici';
import { vi } from 'vitest';
import WebSocket from 'ws';
import type { AgentHealth } from '../../shared/schemas/health.js';
import { readLogStream } from '../../core/docker/log-demux.js';
import { SESSION_PATHS } from '../../core/session-layout.js';
import { sessionSecurityHostConfig } from '../../controller/runtime/session-security.js';
import { handOverAgentDir, handOverCgroups } from '../../controller/runtime/userns.js';
import { dockerExec } from './docker-exec.js';
import { TEST_SESSION_IMAGE } from './session-image.js';
import { testDocker, testEngineRemappedRoot } from './test-engine.js';

export const docker = testDocker;
const MIB = 1024 * 1024;

export interface StartSessionOptions {
  /** Prefix of the container and folder names (unique per test file). */
  prefix: string;
  /** Changes to the HostConfig after the security settings: drop a flag to show what breaks without it. */
  hostConfig?: (config: Docker.HostConfig) => Docker.HostConfig;
  memoryMiB?: number;
  image?: string;
  /** Docker network of the session; none by default. */
  network?: string;
  /** Replaces the image's entrypoint (tini). */
  entrypoint?: string[];
}

export interface AgentResponse<T = unknown> {
  status: number;
  body: T;
}

/** One session container of the real image, started with the flags of controller/runtime/session-security.ts. */
export class SessionContainer {
  readonly #dispatcher: Agent;

  constructor(
    readonly container: Docker.Container,
    readonly name: string,
    /** The host folder mounted at SESSION_PATHS.agentDir. */
    readonly dir: string,
    readonly token: string,
    /** The named volume on the inner daemon's data root. */
    readonly dockerData: string,
  ) {
    this.#dispatcher = new Agent({ connect: { socketPath: this.socketPath } });
  }

  get socketPath(): string {
    return join(this.dir, 'agent.sock');
  }

  /**
   * A request to the agent over its unix socket, with the bearer token; JSON in, JSON (or text) out. Not the typed
   * client: that addresses a controller's `/sessions/{id}` routes, and these tests have the agent alone.
   */
  async call<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, timeoutMs = 120_000): Promise<AgentResponse<T>> {
    const res = await request(`http://session${path}`, {
      method,
      dispatcher: this.#dispatcher,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await res.body.text();
    const json = res.headers['content-type']?.toString().includes('json') ? (JSON.parse(text) as T) : (text as T);
    return { status: res.statusCode, body: json };
  }

  /** Runs a command through the agent's exec route (as the learner). */
  async exec(command: string[], timeoutSeconds = 60): Promise<{ exit_code: number; stdout: string; stderr: string }> {
    const res = await this.call<{ exit_code: number; stdout: string; stderr: string }>('POST', '/exec', {
      command,
      timeout_seconds: timeoutSeconds,
    });
    if (res.status !== 200) throw new Error(`exec ${command.join(' ')}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** A WebSocket to the agent over its socket (ws's `ws+unix:` form). */
  openWebSocket(path: string): WebSocket {
    return new WebSocket(`ws+unix://${this.socketPath}:${path}`, { headers: { authorization: `Bearer ${this.token}` } });
  }

  /** Polls /health until the agent is healthy (inner daemon ready, preloads loaded); returns that health. */
  async waitHealthy(timeoutMs = 90_000): Promise<AgentHealth> {
    // An exited session ends the wait at once: it will not become healthy.
    const outcome = await vi.waitFor(
      async () => {
        const { State } = await this.container.inspect();
        if (!State.Running) return { exitCode: State.ExitCode, health: undefined };
        const res = await this.call<AgentHealth>('GET', '/health');
        if (res.status !== 200 || res.body.status !== 'healthy') throw new Error(`session not healthy after ${timeoutMs} ms: ${JSON.stringify(res.body)}`);
        return { health: res.body };
      },
      { timeout: timeoutMs, interval: 100 },
    );
    if (!outcome.health) throw new Error(`session exited (${outcome.exitCode}): ${await this.logs()}`);
    return outcome.health;
  }

  /** The container's output (the agent's log). */
  async logs(): Promise<string> {
    const buffer = await this.container.logs({ stdout: true, stderr: true, follow: false });
    const chunks: Buffer[] = [];
    await readLogStream(docker, Readable.from([buffer]), false, (_source, chunk) => chunks.push(chunk));
    return Buffer.concat(chunks).toString('utf8');
  }

  /** `docker exec` into the session (not through the agent), e.g. as root to inspect it. */
  dockerExec(command: string[], user = 'root'): Promise<{ exitCode: number; output: string }> {
    return dockerExec(docker, this.name, command, user);
  }

  /** Removes the container, its volumes and the socket folder; safe to call twice. */
  async remove(): Promise<void> {
    // Requests still waiting on the agent (a stalled one) end here, not when they time out.
    await this.#dispatcher.destroy().catch(() => {});
    await this.container.remove({ force: true, v: true }).catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
    await docker.getVolume(this.dockerData).remove().catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a session container of the real image the way the controller does: the security settings of
 * controller/runtime/session-security.ts, a root-only socket folder with a token file, memory/CPU/pids limits.
 */
export async function startSession(options: StartSessionOptions): Promise<SessionContainer> {
  const name = `${options.prefix}-${randomBytes(4).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `${name}-`));
  await chmod(dir, 0o700);
  const token = randomBytes(24).toString('hex');
  const dockerData = `${name}-docker`;
  await docker.createVolume({ Name: dockerData, Labels: { 'runner.test': options.prefix } });
  await writeFile(join(dir, 'token'), token, { mode: 0o600 });
  // On a remapped engine the session's root is not the host's: it gets the folder, as from the controller.
  const remappedRoot = await testEngineRemappedRoot();
  if (remappedRoot) await handOverAgentDir(dir, remappedRoot);
  const base: Docker.HostConfig = {
    ...sessionSecurityHostConfig(),
    Memory: (options.memoryMiB ?? 1536) * MIB,
    MemorySwap: (options.memoryMiB ?? 1536) * MIB,
    NanoCpus: 1e9,
    PidsLimit: 2048,
    // The tests need no egress: no network keeps them independent of the host's default bridge.
    NetworkMode: options.network ?? 'none',
    Binds: [`${dir}:${SESSION_PATHS.agentDir}`],
    Mounts: [{ Type: 'volume', Source: dockerData, Target: SESSION_PATHS.dockerData }],
  };
  try {
    const container = await docker.createContainer({
      name,
      Image: options.image ?? TEST_SESSION_IMAGE,
      Labels: { 'runner.test': options.prefix },
      ...(options.entrypoint ? { Entrypoint: options.entrypoint, Cmd: [] } : {}),
      HostConfig: options.hostConfig ? options.hostConfig(base) : base,
    });
    const session = new SessionContainer(container, name, dir, token, dockerData);
    try {
      await container.start();
      if (remappedRoot) await handOverCgroups({ id: container.id, pid: (await container.inspect()).State.Pid }, remappedRoot);
    } catch (error) {
      await session.remove();
      throw error;
    }
    return session;
  } catch (error) {
    await docker.getVolume(dockerData).remove().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Removes the containers, volumes and socket folders a crashed earlier run of `prefix` left behind. */
export async function removeLeftovers(prefix: string): Promise<void> {
  const folders = (await readdir(tmpdir())).filter((entry) => entry.startsWith(`${prefix}-`));
  await Promise.all(folders.map((entry) => rm(join(tmpdir(), entry), { recursive: true, force: true })));
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`runner.test=${prefix}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  const { Volumes } = await docker.listVolumes({ filters: { label: [`runner.test=${prefix}`] } });
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => {})));
}
