import http from 'node:http';
import net from 'node:net';

/** Loosely typed, like inject's `json()`: tests read what they expect and the assertion says when it is not there. */
export type Json = ReturnType<JSON['parse']>;

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

export function parseJson(text: string): Json {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
