import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import WebSocket from 'ws';
import { Label, MANAGED_BY } from '../../controller/runtime/labels.js';
import type { ExecResult } from '../../shared/schemas/exec.js';
import type { AgentHealth } from '../../shared/schemas/health.js';
import { removeNetwork } from '../helpers/remove-network.js';
import { TEST_SESSION_IMAGE } from '../helpers/session-image.js';
import { TEST_DOCKER_ENV, testDocker } from '../helpers/test-engine.js';

/*
 * The hardening suite drives a real controller, started as its own process exactly as `npm start` does
 * (`node --import tsx controller/main.ts`), so it can be killed and restarted like a deployed one. Everything it
 * makes carries the instance label `hardening-<pid>-<n>`, the name prefix `rthard-` and a `/tmp/rthard-<pid>-<n>`
 * sockets folder, so a crashed run is swept away by the next one and nothing else is ever touched.
 */

export const NAME_PREFIX = 'rthard-';
const INSTANCE_PREFIX = 'hardening-';
const TOKEN = `hardening-token-${process.pid}-0123456789abcdef`;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The engine the suite runs sessions on: DOCKER_HOST when set, else the host's socket. */
export const hostDocker = testDocker;

/** Loosely typed, like inject's `json()`: tests read what they expect and the assertion says when it is not there. */
type Json = ReturnType<JSON['parse']>;

export interface HttpAnswer {
  /** 0 when no HTTP answer came at all (the connection failed or was cut); `error` says why. */
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: Json;
  error?: string;
}

export interface RequestOptions {
  /** An object goes as JSON; a Buffer or string goes as it is (set content-type in `headers`). */
  body?: unknown;
  headers?: Record<string, string>;
  /** The Authorization header: the controller's bearer token by default, null for none, or exactly this value. */
  auth?: string | null;
  timeoutMs?: number;
  /** Sends the body with chunked transfer encoding instead of a Content-Length (bodies over 1 MiB as curl does). */
  chunked?: boolean;
}

/**
 * One HTTP request with node:http on a fresh connection: the path goes out exactly as spelled (fetch and undici
 * resolve `..` and percent-decode nothing, but normalise some spellings), and a keep-alive socket a previous
 * hostile request broke can never be reused.
 */
export function rawRequest(port: number, method: string, path: string, options: RequestOptions & { token?: string } = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? (options.token ? `Bearer ${options.token}` : undefined) : options.auth;
  if (auth !== undefined && auth !== null) headers.authorization = auth;
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    if (Buffer.isBuffer(options.body)) payload = options.body;
    else if (typeof options.body === 'string') payload = Buffer.from(options.body);
    else {
      payload = Buffer.from(JSON.stringify(options.body));
      headers['content-type'] ??= 'application/json';
    }
  }
  if (payload && !options.chunked) headers['content-length'] ??= String(payload.length);
  if (payload && payload.length > UPLOAD_PIECE) return upload(port, method, path, headers, payload, options);
  return new Promise((resolve) => {
    const request = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: options.timeoutMs ?? 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parseJson(text) });
      });
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: '', body: null, error: String(error) }));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) => resolve({ status: 0, headers: {}, text: '', body: null, error: String(error) }));
    if (options.chunked) request.setHeader('transfer-encoding', 'chunked');
    request.end(payload);
  });
}

const UPLOAD_PIECE = 1024 * 1024;

/**
 * A large upload the way curl does it, on a bare socket: the body goes out piece by piece while the answer is
 * read, and the upload stops as soon as an answer arrives. A server may answer early (413) and close; node:http
 * would then report only its own EPIPE and lose the answer.
 */
function upload(port: number, method: string, path: string, headers: Record<string, string>, payload: Buffer, options: RequestOptions): Promise<HttpAnswer> {
  const head = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', ...(options.chunked ? ['transfer-encoding: chunked'] : [])];
  for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let offset = 0;
    const timer = setTimeout(() => socket.destroy(), options.timeoutMs ?? 120_000);
    const writeMore = (): void => {
      while (offset < payload.length && received.length === 0 && !socket.destroyed) {
        const piece = payload.subarray(offset, offset + UPLOAD_PIECE);
        offset += piece.length;
        const framed = options.chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
        if (!socket.write(framed)) return void socket.once('drain', writeMore);
      }
      if (offset >= payload.length && options.chunked && !socket.destroyed) socket.write('0\r\n\r\n');
    };
    socket.write(`${head.join('\r\n')}\r\n\r\n`);
    writeMore();
    const finish = (error?: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponse(received), ...(error && received.length === 0 ? { error } : {}) });
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (isComplete(received)) finish();
    });
    // Written data refused (EPIPE, reset) is expected once the server answered; what it answered is what counts.
    socket.on('error', (error) => finish(String(error)));
    socket.on('close', () => finish('connection closed'));
  });
}

function parseResponse(raw: Buffer): Omit<HttpAnswer, 'error'> {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return { status: 0, headers: {}, text: '', body: null };
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: http.IncomingHttpHeaders = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  const text = body.toString('utf8');
  return { status: Number(statusLine.split(' ')[1]) || 0, headers, text, body: parseJson(text) };
}

/** A whole answer with a Content-Length has arrived (error answers always carry one). */
function isComplete(raw: Buffer): boolean {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(raw.subarray(0, end).toString('latin1'));
  return length !== null && raw.length - end - 4 >= Number(length[1]);
}

function parseJson(text: string): Json {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export interface ControllerOptions {
  /** More controller settings (MAX_SESSIONS, DOCKER_HOST, …) on top of the suite's own. */
  env?: Record<string, string>;
  /** The Docker engine the controller and the helpers use; the host's by default. */
  docker?: Docker;
  /**
   * HOST for the controller: '0.0.0.0' listens on every address of the host as a deployed one does (the suite
   * always sets a token, so that is also what the controller picks when this is left out). Requests of the suite
   * still go to 127.0.0.1.
   */
  host?: string;
}

let counter = 0;

/** A real controller process on a fixed port, with a token, under the suite's labels and folders. */
export class ControllerProcess {
  readonly token = TOKEN;
  readonly instance: string;
  readonly network: string;
  readonly socketsDir: string;
  readonly docker: Docker;
  port = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: FileHandle | undefined;
  readonly #logFile: string;
  #env: Record<string, string>;

  constructor(options: ControllerOptions = {}) {
    const tag = `${process.pid}-${(counter += 1)}`;
    this.instance = `${INSTANCE_PREFIX}${tag}`;
    this.network = `${NAME_PREFIX}${tag}`;
    this.socketsDir = `/tmp/${NAME_PREFIX}${tag}`;
    this.#logFile = `/tmp/${NAME_PREFIX}${tag}.log`;
    this.docker = options.docker ?? hostDocker;
    this.#env = { ...(options.host ? { HOST: options.host } : {}), ...options.env };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The controller's process id while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get alive(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  async start(env: Record<string, string> = {}): Promise<void> {
    this.#env = { ...this.#env, ...env };
    if (this.port === 0) this.port = await freePort();
    await mkdir(this.socketsDir, { recursive: true, mode: 0o711 });
    this.#log ??= await open(this.#logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', 'controller/main.ts'], {
      cwd: REPO_ROOT,
      // Only what the controller needs: the suite's own environment (vitest's) must not change its behaviour.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        PORT: String(this.port),
        RUNNER_API_TOKEN: this.token,
        RUNNER_INSTANCE: this.instance,
        SESSION_NETWORK: this.network,
        SESSION_NAME_PREFIX: NAME_PREFIX,
        SOCKETS_DIR: this.socketsDir,
        LOG_LEVEL: 'info',
        SESSION_IMAGE: TEST_SESSION_IMAGE,
        ...TEST_DOCKER_ENV,
        ...this.#env,
      },
      stdio: ['ignore', this.#log.fd, this.#log.fd],
    });
    this.#child = child;
    this.#exited = once(child, 'exit').then(() => {});
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.alive) throw new Error(`controller exited at start (${child.exitCode ?? child.signalCode}): ${await this.logTail()}`);
      const health = await this.request('GET', '/health', { timeoutMs: 2_000 });
      if (health.status === 200 || health.status === 503) return;
      await sleep(100);
    }
    throw new Error(`controller did not answer within ${READY_TIMEOUT_MS} ms: ${await this.logTail()}`);
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

  request(method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return rawRequest(this.port, method, path, { ...options, token: this.token });
  }

  /** Creates a session and fails the test unless it is 201. */
  async createSession(id: string, ttlSeconds?: number): Promise<void> {
    const created = await this.request('POST', '/sessions', { body: { session_id: id, ...(ttlSeconds ? { ttl_seconds: ttlSeconds } : {}) }, timeoutMs: 300_000 });
    if (created.status !== 201) throw new Error(`creating session ${id}: ${created.status} ${created.text.slice(0, 2000)}`);
  }

  async deleteSession(id: string): Promise<HttpAnswer> {
    return this.request('DELETE', `/sessions/${id}`, { timeoutMs: 120_000 });
  }

  /** Runs a command as the learner through the controller; a shell line runs under `sh -c`. */
  async exec(id: string, command: string | string[], options: { timeoutSeconds?: number; workdir?: string } = {}): Promise<ExecResult> {
    const argv = typeof command === 'string' ? ['sh', '-c', command] : command;
    const res = await this.request('POST', `/sessions/${id}/exec`, {
      body: { command: argv, ...(options.timeoutSeconds ? { timeout_seconds: options.timeoutSeconds } : {}), ...(options.workdir ? { workdir: options.workdir } : {}) },
      timeoutMs: 600_000,
    });
    if (res.status !== 200) throw new Error(`exec ${argv.join(' ')} in ${id}: ${res.status} ${res.error ?? res.text.slice(0, 1000)}`);
    return res.body as ExecResult;
  }

  /** The agent's own health, through the controller. */
  async agentHealth(id: string, timeoutMs = 10_000): Promise<{ status: number; health: AgentHealth | null; ms: number }> {
    const started = performance.now();
    const res = await this.request('GET', `/sessions/${id}/health`, { timeoutMs });
    return { status: res.status, health: res.status === 200 ? (res.body as AgentHealth) : null, ms: performance.now() - started };
  }

  containerName(id: string): string {
    return `${NAME_PREFIX}${id}`;
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
    const text = await readFile(this.#logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }

  /** Stops the controller and removes every container, volume, network and folder it made. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => {});
    await removeInstance(this.docker, this.instance, this.network);
    await rm(this.socketsDir, { recursive: true, force: true });
    await this.#log?.close().catch(() => {});
    await rm(this.#logFile, { force: true });
  }
}

async function removeInstance(docker: Docker, instance: string, network: string): Promise<void> {
  const label = `${Label.instance}=${instance}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => []);
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  const { Volumes } = await docker.listVolumes({ filters: { label: [label] } }).catch(() => ({ Volumes: [] }));
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => {})));
  // By id: a racing create can leave several networks of one name, which the name alone cannot remove.
  const networks = await docker.listNetworks({ filters: { label: [label] } }).catch(() => []);
  if (networks.length === 0) await removeNetwork(docker, network);
  await Promise.all(networks.map((n) => removeNetwork(docker, n.Id, n.Name)));
}

/** Removes what earlier runs of the suite left behind when they crashed (their process is gone). */
export async function sweepStaleRuns(docker: Docker = hostDocker): Promise<void> {
  const stale = (instance: string | undefined): boolean => {
    const pid = Number(instance?.slice(INSTANCE_PREFIX.length).split('-')[0]);
    return instance?.startsWith(INSTANCE_PREFIX) === true && pid !== process.pid && !isAlive(pid);
  };
  const containers = await docker.listContainers({ all: true, filters: { label: [`${Label.managedBy}=${MANAGED_BY}`] } });
  const instances = new Set(containers.map((c) => c.Labels[Label.instance]).filter(stale));
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${Label.managedBy}=${MANAGED_BY}`] } });
  for (const v of Volumes ?? []) if (stale(v.Labels?.[Label.instance])) instances.add(v.Labels[Label.instance]!);
  const networks = await docker.listNetworks({ filters: { label: [`${Label.managedBy}=${MANAGED_BY}`] } });
  for (const n of networks) if (stale(n.Labels?.[Label.instance])) instances.add(n.Labels![Label.instance]!);
  for (const instance of instances) {
    await removeInstance(docker, instance!, `${NAME_PREFIX}${instance!.slice(INSTANCE_PREFIX.length)}`);
  }
  for (const name of await readdir('/tmp')) {
    const pid = Number(name.slice(NAME_PREFIX.length).split('-')[0]);
    if (name.startsWith(NAME_PREFIX) && pid !== process.pid && !isAlive(pid)) await rm(`/tmp/${name}`, { recursive: true, force: true });
  }
}

/** Whether a process with this pid still runs (a crashed earlier run's leftovers are swept when not). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `docker exec` into a session container (not through the agent): root by default, to look at or break it. */
export async function dockerExec(docker: Docker, container: string, command: string[], user = 'root'): Promise<{ exitCode: number; output: string }> {
  const exec = await docker.getContainer(container).exec({ Cmd: command, User: user, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const sink = { write: (chunk: Buffer) => chunks.push(chunk) } as unknown as NodeJS.WritableStream;
    docker.modem.demuxStream(stream, sink, sink);
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}

/** Polls `check` until it returns a value (not undefined) or the time is up; returns the value and the seconds it took. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000, intervalMs = 250): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  let last: unknown;
  while (performance.now() - started < timeoutMs) {
    try {
      const value = await check();
      if (value !== undefined) return { value, seconds: (performance.now() - started) / 1000 };
    } catch (error) {
      last = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}${last ? `: ${String(last)}` : ''}`);
}

/** A WebSocket through the controller: open, or the HTTP answer that refused the upgrade. */
export interface WsOutcome {
  socket?: WebSocket;
  status?: number;
  body?: Json;
  headers?: http.IncomingHttpHeaders;
  error?: string;
  /**
   * Frames that arrived before the caller could listen (a terminal's replay can come in the same read as the 101)
   * and stop collecting them; without it they would be lost between 'open' and the caller's first listener.
   */
  takeEarlyFrames?: () => Buffer[];
}

export function openWebSocket(port: number, path: string, auth: string | null): Promise<WsOutcome> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: auth ? { authorization: auth } : {} });
    const early: Buffer[] = [];
    const keep = (data: Buffer): void => void early.push(data);
    socket.on('message', keep);
    const takeEarlyFrames = (): Buffer[] => {
      socket.off('message', keep);
      return early;
    };
    socket.once('upgrade', (res) => socket.once('open', () => resolve({ socket, headers: res.headers, takeEarlyFrames })));
    socket.once('unexpected-response', (_request, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body: parseJson(text) }));
    });
    socket.once('error', (error) => resolve({ error: String(error) }));
  });
}

/** The close code and reason a socket ends with. */
export function closeOf(socket: WebSocket): Promise<{ code: number; reason: string }> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '' });
  return new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** An interactive shell through the controller's terminal WebSocket. */
export class TerminalClient {
  output = '';
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => (this.output += data.toString('utf8')));
    this.closed = closeOf(socket);
  }

  static async open(ctl: ControllerProcess, sessionId: string, terminalId: string): Promise<TerminalClient> {
    const outcome = await openWebSocket(ctl.port, `/sessions/${sessionId}/terminal/ws?id=${terminalId}`, `Bearer ${ctl.token}`);
    if (!outcome.socket) throw new Error(`terminal ${terminalId} of ${sessionId} did not open: ${outcome.status} ${JSON.stringify(outcome.body ?? outcome.error)}`);
    // Listen first, then take what came before, so no frame falls in between.
    const client = new TerminalClient(outcome.socket);
    const early = outcome.takeEarlyFrames?.() ?? [];
    client.output = Buffer.concat(early).toString('utf8') + client.output;
    return client;
  }

  /** Types a line; `""` inside a marker keeps the echoed input from matching the output. */
  type(line: string): void {
    this.socket.send(`${line}\r`);
  }

  async waitFor(text: string | RegExp, timeoutMs = 30_000): Promise<void> {
    const matches = (): boolean => (typeof text === 'string' ? this.output.includes(text) : text.test(this.output));
    await waitUntil(`the terminal shows ${String(text)}`, async () => (matches() ? true : undefined), timeoutMs, 50).catch(() => {
      throw new Error(`terminal never showed ${String(text)}; it showed: ${JSON.stringify(this.output.slice(-500))}`);
    });
  }

  close(): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
  }
}

/** What the server answered to a hand-written WebSocket upgrade followed by raw bytes. */
export interface RawFramesOutcome {
  /** The status line of the handshake answer. */
  handshake: string;
  /** The code of the server's close frame, or null when none came. */
  closeCode: number | null;
}

/**
 * Upgrades a connection by hand and then writes `bytes` as they are, so frames a WebSocket library would never
 * send (unmasked, reserved bits, invalid UTF-8, absurd lengths) reach the controller.
 */
export function sendRawFrames(port: number, path: string, token: string, bytes: Buffer, timeoutMs = 10_000): Promise<RawFramesOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const key = Buffer.from('hardening-suite!').toString('base64');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    let received = Buffer.alloc(0);
    let sent = false;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!sent && received.includes('\r\n\r\n')) {
        sent = true;
        socket.write(bytes);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const end = received.indexOf('\r\n\r\n');
      const handshake = received.subarray(0, received.indexOf('\r\n')).toString();
      resolve({ handshake, closeCode: end === -1 ? null : closeCodeOf(received.subarray(end + 4)) });
    });
  });
}

/** The code of the first close frame in a stream of server frames (unmasked). */
function closeCodeOf(data: Buffer): number | null {
  let offset = 0;
  while (offset + 2 <= data.length) {
    const opcode = data[offset]! & 0x0f;
    let length = data[offset + 1]! & 0x7f;
    let header = 2;
    if (length === 126) {
      if (offset + 4 > data.length) break;
      length = data.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (offset + 10 > data.length) break;
      length = Number(data.readBigUInt64BE(offset + 2));
      header = 10;
    }
    if (opcode === 0x8) return length >= 2 ? data.readUInt16BE(offset + header) : 1005;
    offset += header + length;
  }
  return null;
}

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** A client frame as RFC 6455 wants it (masked), or broken on purpose through the options. */
export function clientFrame(opcode: number, payload: Buffer, options: { fin?: boolean; rsv?: number; masked?: boolean } = {}): Buffer {
  const { fin = true, rsv = 0, masked = true } = options;
  const first = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  const length = payload.length;
  const header = length < 126 ? Buffer.from([first, length]) : length < 65_536 ? Buffer.from([first, 126, length >> 8, length & 0xff]) : Buffer.concat([Buffer.from([first, 127]), u64(length)]);
  if (!masked) return Buffer.concat([header, payload]);
  header[1] = header[1]! | 0x80;
  return Buffer.concat([header, MASK, Buffer.from(payload.map((byte, i) => byte ^ MASK[i % 4]!))]);
}

function u64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}
