import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import WebSocket from 'ws';
import { RunnerClient, type SessionClient } from '../../client/src/index.js';
import { AgentRoute } from '../../shared/routes.js';
import type { BuildInput, BuildResult, ExecInput, ExecResult, FileList, MkdirResult, WriteFileResult } from '../../client/src/types.js';

const TIMEOUT_MS = 300_000;
const OCTET_STREAM = 'application/octet-stream';

/** What the figures call on a session's agent: part of the typed client's SessionClient, which the baselines mirror. */
export type AgentCalls = Pick<SessionClient, 'exec' | 'listFiles' | 'mkdir' | 'writeFile' | 'readBytes' | 'build'>;

/** Runs a command as the learner; throws unless it exits 0. */
export async function execOk(api: AgentCalls, command: string[]): Promise<ExecResult> {
  const result = await api.exec({ command });
  if (result.exit_code !== 0) throw new Error(`${command.join(' ')} exited ${result.exit_code}: ${result.stderr.slice(0, 300)}`);
  return result;
}

/**
 * The typed client a backend uses, on one keep-alive undici pool to the controller: the HTTP stack of the direct
 * baselines, so that "via controller" and "direct" differ by the proxy and not by the client library (Node's global
 * fetch costs more per request: docs/benchmarks.md has the A/B).
 */
export function benchClient(url: string, token?: string): { runner: RunnerClient; close: () => Promise<void> } {
  const pool = new Pool(url);
  return { runner: new RunnerClient({ baseUrl: url, token, fetch: poolFetch(pool) }), close: () => pool.close() };
}

/** The part of a fetch `Response` the client reads. */
type ClientResponse = Pick<Response, 'ok' | 'status' | 'json' | 'text' | 'arrayBuffer' | 'body'>;

/**
 * `fetch` as the client calls it (a URL string, method, plain headers, a string or bytes body), over `pool`. The
 * answer is undici's own body behind the part of a Response the client reads: a real Response around it would put
 * a web stream between the socket and the bytes, which cost up to 6% of a 50 MiB read in the A/B.
 */
function poolFetch(pool: Pool): typeof fetch {
  const pooled = async (input: string, init: RequestInit = {}): Promise<ClientResponse> => {
    const url = new URL(input);
    const { statusCode, body } = await pool.request({
      method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
      path: `${url.pathname}${url.search}`,
      headers: init.headers as Record<string, string>,
      body: init.body as string | Uint8Array | undefined,
      signal: init.signal ?? undefined,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    return {
      ok: statusCode >= 200 && statusCode < 300,
      status: statusCode,
      json: () => body.json(),
      text: () => body.text(),
      arrayBuffer: () => body.arrayBuffer(),
      get body() {
        return Readable.toWeb(body) as ReadableStream<Uint8Array>;
      },
    };
  };
  return pooled as unknown as typeof fetch;
}

/** A terminal through the controller: the client's URL, on the same WebSocket stack as the direct baseline. */
export function controllerTerminal(runner: RunnerClient, session: SessionClient): WebSocket {
  return new WebSocket(session.terminalUrl(), { headers: runner.transport.authHeaders(), perMessageDeflate: false });
}

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

  async send(method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body?: Uint8Array | string): Promise<HttpAnswer> {
    const res = await this.#pool.request({ method, path, headers, body, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
    return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
  }

  /** JSON in and out; throws on any status but 200 and 201. */
  async json<T>(method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body?: unknown): Promise<T> {
    const answer = await this.send(
      method,
      path,
      body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body === undefined ? undefined : JSON.stringify(body),
    );
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`${method} ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 500)}`);
    return JSON.parse(answer.body.toString('utf8')) as T;
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/**
 * One session's agent without the controller: on its unix socket, or through a relay in front of it. The typed
 * client addresses the controller only, so these baselines keep their own HTTP (undici, as the bench's client).
 */
export class AgentApi implements AgentCalls {
  readonly #headers: Record<string, string>;

  constructor(
    readonly http: HttpClient,
    token: string,
    readonly openWebSocket: (path: string) => WebSocket,
  ) {
    this.#headers = { authorization: `Bearer ${token}` };
  }

  /** Direct to the agent's unix socket with its bearer token (no controller in between). */
  static direct(socketPath: string, token: string): AgentApi {
    return new AgentApi(new HttpClient('http://agent', socketPath), token, (path) =>
      new WebSocket(`ws+unix://${socketPath}:${path}`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false }),
    );
  }

  /** To the agent's own routes at a TCP origin (a relay in front of its socket) with its bearer token. */
  static overTcp(origin: string, token: string): AgentApi {
    return new AgentApi(new HttpClient(origin), token, (path) =>
      new WebSocket(`${origin.replace(/^http/, 'ws')}${path}`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false }),
    );
  }

  exec(request: ExecInput): Promise<ExecResult> {
    return this.http.json<ExecResult>('POST', AgentRoute.exec, this.#headers, request);
  }

  listFiles(path = '/workspace', depth = 1): Promise<FileList> {
    return this.http.json<FileList>('GET', `${AgentRoute.files}?${new URLSearchParams({ path, depth: String(depth) })}`, this.#headers);
  }

  mkdir(path: string): Promise<MkdirResult> {
    return this.http.json<MkdirResult>('POST', AgentRoute.filesMkdir, this.#headers, { path });
  }

  /** Text as JSON, bytes as `application/octet-stream`, as the client sends them. */
  async writeFile(path: string, content: string | Uint8Array): Promise<WriteFileResult> {
    if (typeof content === 'string') return this.http.json<WriteFileResult>('PUT', this.#filePath(path), this.#headers, { content });
    const answer = await this.http.send('PUT', this.#filePath(path), { ...this.#headers, 'content-type': OCTET_STREAM }, content);
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`PUT ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`);
    return JSON.parse(answer.body.toString('utf8')) as WriteFileResult;
  }

  async readBytes(path: string): Promise<Uint8Array> {
    const answer = await this.http.send('GET', this.#filePath(path), { ...this.#headers, accept: OCTET_STREAM });
    if (answer.status !== 200) throw new Error(`GET ${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`);
    return answer.body;
  }

  build(request: BuildInput): Promise<BuildResult> {
    return this.http.json<BuildResult>('POST', AgentRoute.build, this.#headers, request);
  }

  terminal(): WebSocket {
    return this.openWebSocket(AgentRoute.terminalWs);
  }

  // `/workspace/a/b` → `/files/workspace/a/b`, each segment encoded.
  #filePath(path: string): string {
    const segments = path.split('/').filter(Boolean).map(encodeURIComponent);
    return `${AgentRoute.files}/${segments.join('/')}`;
  }
}
