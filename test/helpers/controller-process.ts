import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { Agent, fetch as undiciFetch } from 'undici';
import { RunnerClient, type DeleteSessionResponse } from '../../client/src/index.js';
import { parseControllerConfig, type ControllerConfig } from '../../controller/config.js';
import { Label } from '../../controller/runtime/labels.js';
import type { ExecResult } from '../../shared/schemas/exec.js';
import type { AgentHealth } from '../../shared/schemas/health.js';
import { removeInstance } from './docker-sweep.js';
import { freePort } from './free-port.js';
import { rawRequest, type HttpAnswer, type RequestOptions } from './http-client.js';
import { testDocker } from './test-engine.js';
import { waitUntil } from './wait-until.js';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LONG_REQUEST_MS = 600_000;
// The node options scripts/start.sh starts the controller with (why: there).
const CONTROLLER_NODE_OPTIONS = ['--initial-old-space-size=96'];

// The client's requests each on a fresh connection, as rawRequest's: the suites kill and restart the controller on
// the same port, and a kept-alive socket of the dead one must never be reused. Long deadlines: the suites load it.
const freshConnections = new Agent({ pipelining: 0, headersTimeout: LONG_REQUEST_MS, bodyTimeout: LONG_REQUEST_MS });

export interface ControllerProcessOptions {
  /**
   * The controller's whole environment but PORT (a free loopback port, kept across restarts): its instance,
   * network, name prefix and sockets folder name what it owns. Nothing of the caller's environment is added.
   */
  env: Record<string, string>;
  /** Where the controller's stdout and stderr go (appended across restarts; removed by `destroy`). */
  logFile: string;
  /** Extra `node` options, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** The engine `leftovers` and `destroy` look at: the tests' engine by default. */
  docker?: Docker;
  /** The checkout whose controller runs: this one by default (the bench's A/B runs another one beside it). */
  checkout?: string;
}

/**
 * A real controller as its own process (`node --import tsx controller/main.ts`, as scripts/start.sh runs it), so it
 * can be killed and restarted like a deployed one; requests go to 127.0.0.1 with its token, if it has one.
 */
export class ControllerProcess {
  readonly docker: Docker;
  readonly logFile: string;
  port = 0;
  #env: Record<string, string>;
  #config: ControllerConfig;
  readonly #nodeArgs: string[];
  readonly #checkout: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #lastResponse = { status: 0, headers: new Headers() };
  readonly #fetch = (async (input: string, init?: RequestInit) => {
    const response = await undiciFetch(input, { ...(init as object), dispatcher: freshConnections });
    this.#lastResponse = { status: response.status, headers: response.headers as unknown as Headers };
    return response;
  }) as unknown as typeof fetch;

  constructor(options: ControllerProcessOptions) {
    this.#env = options.env;
    this.#config = parseControllerConfig(options.env);
    this.logFile = options.logFile;
    this.#nodeArgs = options.nodeArgs ?? [];
    this.#checkout = options.checkout ?? REPO_ROOT;
    this.docker = options.docker ?? testDocker;
  }

  /** The configuration the controller parses from its environment. */
  get config(): ControllerConfig {
    return this.#config;
  }

  get token(): string {
    return this.#config.apiToken ?? '';
  }

  get instance(): string {
    return this.#config.instance;
  }

  get network(): string {
    return this.#config.network;
  }

  get socketsDir(): string {
    return this.#config.socketsDir;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get alive(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the controller (with `env` added to its environment from now on) and waits until /health answers. */
  async start(env: Record<string, string> = {}): Promise<void> {
    this.#env = { ...this.#env, ...env };
    this.#config = parseControllerConfig(this.#env);
    if (this.port === 0) this.port = await freePort();
    await mkdir(this.socketsDir, { recursive: true, mode: 0o711 });
    const log = await open(this.logFile, 'a');
    const child = spawn(process.execPath, [...CONTROLLER_NODE_OPTIONS, ...this.#nodeArgs, '--import', 'tsx', 'controller/main.ts'], {
      cwd: this.#checkout,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...this.#env, PORT: String(this.port) },
      stdio: ['ignore', log.fd, log.fd],
    });
    // The child has its own copy of the descriptor.
    await log.close();
    this.#child = child;
    this.#exited = once(child, 'exit').then(() => {});
    await waitUntil(
      'the controller answers /health',
      async () => {
        if (!this.alive) throw new Error(`controller exited at start (${child.exitCode ?? child.signalCode}): ${await this.logTail()}`);
        const { status } = await this.request('GET', '/health', { timeoutMs: 2_000 });
        return status === 200 || status === 503 ? true : undefined;
      },
      READY_TIMEOUT_MS,
    ).catch(async (error: Error) => {
      await this.stop('SIGKILL');
      throw new Error(`${error.message}\n${await this.logTail()}`);
    });
  }

  /** Sends `signal` and waits for the process to end (SIGKILL after a grace period). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child || !this.alive) return;
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(killer);
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM', env: Record<string, string> = {}): Promise<void> {
    await this.stop(signal);
    await this.start(env);
  }

  /** The typed client a backend uses, with the controller's token: for the suites' ordinary calls. */
  get client(): RunnerClient {
    return new RunnerClient({ baseUrl: this.url, token: this.token || undefined, fetch: this.#fetch });
  }

  /** The status and headers of the client's last answer: the client gives bodies, and 201 against 200 is the API's too. */
  lastResponse(): { status: number; headers: Headers } {
    return this.#lastResponse;
  }

  /** Any request, byte for byte (rawRequest): for what the client never sends, hostile paths, bodies and tokens. */
  request(method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return rawRequest(this.port, method, path, { ...options, token: this.token });
  }

  /** Creates a session; fails (a RunnerError) unless it was created. */
  async createSession(id: string, ttlSeconds?: number): Promise<void> {
    await this.client.createSession({ session_id: id, ...(ttlSeconds ? { ttl_seconds: ttlSeconds } : {}) });
  }

  deleteSession(id: string): Promise<DeleteSessionResponse> {
    return this.client.deleteSession(id);
  }

  /** Runs a command as the learner through the controller; a shell line runs under `sh -c`. */
  exec(id: string, command: string | string[], options: { timeoutSeconds?: number; workdir?: string } = {}): Promise<ExecResult> {
    const argv = typeof command === 'string' ? ['sh', '-c', command] : command;
    return this.client.session(id).exec({ command: argv, timeout_seconds: options.timeoutSeconds, workdir: options.workdir });
  }

  /**
   * The agent's own health, through the controller, and how long it took to answer. Raw: a probe with its own
   * deadline, whose answer may be none at all (status 0) or any error status.
   */
  async agentHealth(id: string, timeoutMs = 10_000): Promise<{ status: number; health: AgentHealth | null; ms: number }> {
    const started = performance.now();
    const res = await this.request('GET', `/sessions/${id}/health`, { timeoutMs });
    return { status: res.status, health: res.status === 200 ? (res.body as AgentHealth) : null, ms: performance.now() - started };
  }

  containerName(id: string): string {
    return `${this.#config.namePrefix}${id}`;
  }

  /** The bearer token the controller gave this session's agent (the learner must never see it). */
  async agentToken(id: string): Promise<string> {
    return (await readFile(`${this.socketsDir}/${id}/agent/token`, 'utf8')).trim();
  }

  /** What of this controller's exists in Docker and on disk. */
  async leftovers(): Promise<{ containers: string[]; volumes: string[]; folders: string[]; network: boolean }> {
    const label = `${Label.instance}=${this.instance}`;
    const containers = await this.docker.listContainers({ all: true, filters: { label: [label] } });
    const { Volumes } = await this.docker.listVolumes({ filters: { label: [label] } });
    const networks = await this.docker.listNetworks({ filters: { name: [this.network] } });
    return {
      containers: containers.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, '')),
      volumes: (Volumes ?? []).map((v) => v.Name),
      folders: await readdir(this.socketsDir).catch(() => []),
      network: networks.some((n) => n.Name === this.network),
    };
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }

  /** Resident memory of the controller process, in bytes (VmRSS). */
  async rssBytes(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (kib === undefined) throw new Error('no VmRSS for the controller');
    return Number(kib) * 1024;
  }

  /** CPU time (user + system) the controller process has used so far, in milliseconds. */
  async cpuMs(): Promise<number> {
    // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesized command name, in clock ticks (100 per second).
    const stat = await readFile(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  }

  /** Stops the controller and removes every container, volume, network and folder it made, and its log. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => {});
    await removeInstance(this.docker, this.instance, this.network);
    await rm(this.socketsDir, { recursive: true, force: true });
    await rm(this.logFile, { force: true });
  }
}
