import { Pool, type Dispatcher } from 'undici';
import WebSocket from 'ws';
import { RunnerClient } from '../../client/src/index.js';
import { AgentRoute, sessionPath } from '../../shared/routes.js';
import type { ExecResult } from '../../shared/schemas/exec.js';
import type { BuildRequest, BuildResult } from '../../shared/schemas/docker.js';
import type { FileList } from '../../shared/schemas/files.js';
import type { SessionInfo } from '../../shared/schemas/session.js';

const TIMEOUT_MS = 300_000;
const OCTET_STREAM = 'application/octet-stream';

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** Keep-alive HTTP to one origin (TCP or a unix socket), as a backend would hold it. */
export class HttpClient {
  readonly #pool: Pool;

  constructor(origin: string, socketPath?: string) {
    this.#pool = new Pool(origin, socketPath ? { socketPath } : {});
  }

  async send(method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<HttpAnswer> {
    const res = await this.#pool.request({ method, path, headers, body, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
  }

  /** JSON in and out; throws on any status but `expect`. */
  async json<T>(method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body?: unknown, expect: number[] = [200, 201]): Promise<T> {
    const answer = await this.send(
      method,
      path,
      body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body === undefined ? undefined : JSON.stringify(body),
    );
    if (!expect.includes(answer.status)) throw new Error(`${method} ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 500)}`);
    return JSON.parse(answer.body.toString('utf8')) as T;
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/**
 * The controller's own API: sessions through the typed client a backend uses; the agent routes over one keep-alive
 * pool, the same HTTP stack as direct access to an agent, so that the two compare the proxy and nothing else.
 */
export class ControllerApi {
  readonly http: HttpClient;
  readonly runner: RunnerClient;

  constructor(readonly url: string) {
    this.http = new HttpClient(url);
    this.runner = new RunnerClient({ baseUrl: url });
  }

  createSession(sessionId: string): Promise<SessionInfo> {
    return this.runner.createSession({ session_id: sessionId });
  }

  async deleteSession(sessionId: string): Promise<void> {
    await this.runner.deleteSession(sessionId);
  }

  async listSessions(): Promise<{ sessions: SessionInfo[] }> {
    return { sessions: await this.runner.listSessions() };
  }

  /** The agent of one session through the controller's proxy. */
  agent(sessionId: string): AgentApi {
    const wsBase = this.url.replace(/^http/, 'ws');
    return new AgentApi(this.http, sessionPath(sessionId), {}, (path) => new WebSocket(`${wsBase}${sessionPath(sessionId)}${path}`, { perMessageDeflate: false }));
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

/** One session's agent API: the same calls through the controller (prefix `/sessions/{id}`) or direct on its socket. */
export class AgentApi {
  constructor(
    readonly http: HttpClient,
    readonly prefix: string,
    readonly headers: Record<string, string>,
    readonly openWebSocket: (path: string) => WebSocket,
  ) {}

  /** Direct to the agent's unix socket with its bearer token (no controller in between). */
  static direct(socketPath: string, token: string): AgentApi {
    const headers = { authorization: `Bearer ${token}` };
    return new AgentApi(new HttpClient('http://agent', socketPath), '', headers, (path) =>
      new WebSocket(`ws+unix://${socketPath}:${path}`, { headers, perMessageDeflate: false }),
    );
  }

  /** To the agent's own routes at a TCP origin (a relay in front of its socket) with its bearer token. */
  static overTcp(origin: string, token: string): AgentApi {
    const headers = { authorization: `Bearer ${token}` };
    return new AgentApi(new HttpClient(origin), '', headers, (path) => new WebSocket(`${origin.replace(/^http/, 'ws')}${path}`, { headers, perMessageDeflate: false }));
  }

  /** Runs a command as the learner; throws unless it exits 0. */
  async exec(command: string[]): Promise<ExecResult> {
    const result = await this.http.json<ExecResult>('POST', this.prefix + AgentRoute.exec, this.headers, { command });
    if (result.exit_code !== 0) throw new Error(`${command.join(' ')} exited ${result.exit_code}: ${result.stderr.slice(0, 300)}`);
    return result;
  }

  list(path: string): Promise<FileList> {
    return this.http.json<FileList>('GET', `${this.prefix}${AgentRoute.files}?path=${encodeURIComponent(path)}`, this.headers);
  }

  async mkdir(path: string): Promise<void> {
    await this.http.json('POST', this.prefix + AgentRoute.filesMkdir, this.headers, { path });
  }

  /** Writes raw bytes to a workspace path such as `/workspace/a/b.bin`. */
  async writeFile(path: string, data: Buffer | string): Promise<void> {
    const answer = await this.http.send('PUT', this.#filePath(path), { ...this.headers, 'content-type': OCTET_STREAM }, data);
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`PUT ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`);
  }

  async readFile(path: string): Promise<Buffer> {
    const answer = await this.http.send('GET', this.#filePath(path), { ...this.headers, accept: OCTET_STREAM });
    if (answer.status !== 200) throw new Error(`GET ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`);
    return answer.body;
  }

  build(request: Partial<BuildRequest> & Pick<BuildRequest, 'image_tag'>): Promise<BuildResult> {
    return this.http.json<BuildResult>('POST', this.prefix + AgentRoute.build, this.headers, request);
  }

  terminal(): WebSocket {
    return this.openWebSocket(AgentRoute.terminalWs);
  }

  // `/workspace/a/b` → `/files/workspace/a/b`, each segment encoded.
  #filePath(path: string): string {
    const segments = path.split('/').filter(Boolean).map(encodeURIComponent);
    return `${this.prefix}${AgentRoute.files}/${segments.join('/')}`;
  }
}
