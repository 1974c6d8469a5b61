import { errorOf } from './runner-error.js';

export interface TransportOptions {
  /** The controller, e.g. `http://localhost:8080`; '' means the page's own origin (the console). */
  baseUrl: string;
  /** RUNNER_API_TOKEN; none when the controller runs without one. */
  token?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

const OCTET_STREAM = 'application/octet-stream';

/** HTTP to the controller: the token on every request, an error body turned into a RunnerError. */
export class Transport {
  readonly baseUrl: string;
  readonly token: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: TransportOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `Authorization` for the token, for callers that open their own connections. */
  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async #send(method: string, path: string, body: unknown, accept: string, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { ...this.authHeaders(), accept };
    let payload: RequestInit['body'];
    if (body instanceof Uint8Array) {
      headers['content-type'] = OCTET_STREAM;
      payload = body as RequestInit['body'];
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const response = await this.#fetch(`${this.baseUrl}${path}`, { method, headers, body: payload, signal });
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  /** A JSON request and its JSON answer (undefined for 204). */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.#send(method, path, body, 'application/json');
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** Raw bytes of one type (an archive) and the JSON answer. */
  async upload<T>(method: string, path: string, bytes: Uint8Array, contentType: string): Promise<T> {
    const headers = { ...this.authHeaders(), accept: 'application/json', 'content-type': contentType };
    const response = await this.#fetch(`${this.baseUrl}${path}`, { method, headers, body: bytes as RequestInit['body'] });
    if (!response.ok) throw await errorOf(response);
    return (await response.json()) as T;
  }

  async bytes(path: string): Promise<Uint8Array> {
    const response = await this.#send('GET', path, undefined, OCTET_STREAM);
    return new Uint8Array(await response.arrayBuffer());
  }

  /** The body of a streamed answer, once its status says the stream started. */
  async stream(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const response = await this.#send(method, path, body, '*/*', signal);
    if (!response.body) throw new Error(`${method} ${path} answered without a body`);
    return response.body;
  }

  websocketUrl(path: string): string {
    const base = this.baseUrl === '' ? (globalThis as unknown as { location: { origin: string } }).location.origin : this.baseUrl;
    return `${base.replace(/^http/, 'ws')}${path}`;
  }
}
