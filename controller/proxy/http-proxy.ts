import { pipeline, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { AppError } from '../../shared/errors.js';
import { responseHeaders, type OutgoingHeaders } from './headers.js';

export interface HttpUpstream {
  dispatcher: Dispatcher;
  /** Needed by a shared dispatcher (ports); a per-socket pool knows its origin. */
  origin?: string;
  /** Path and query exactly as the client spelled them below the session prefix. */
  path: string;
  headers: OutgoingHeaders;
  /** How long the upstream may take to start answering. */
  headersTimeoutMs: number;
  /** Longest silence allowed between two chunks of a response body. */
  bodyTimeoutMs: number;
  /** Names the upstream in error messages, e.g. "the agent of session abc". */
  name: string;
  details?: Record<string, unknown>;
}

/** Streams the request to the upstream and its answer back, status, headers and body unchanged. */
export async function forwardHttp(request: FastifyRequest, reply: FastifyReply, upstream: HttpUpstream): Promise<FastifyReply> {
  const abort = new AbortController();
  const res = reply.raw;
  // A client that goes away before the answer is complete cancels the upstream request.
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  let answer: Dispatcher.ResponseData;
  try {
    answer = await upstream.dispatcher.request({
      origin: upstream.origin,
      path: upstream.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstream.headers,
      body: (request.body as Readable | undefined) ?? null,
      signal: abort.signal,
      headersTimeout: upstream.headersTimeoutMs,
      bodyTimeout: upstream.bodyTimeoutMs,
    });
  } catch (error) {
    // Nobody is left to answer when the client itself went away.
    if (abort.signal.aborted) return reply.hijack();
    throw upstreamError(error, upstream.name, upstream.details);
  }
  // Written here rather than by reply.send, which would hold the status until the first body chunk and turn an
  // upstream that breaks off before it into a 500: a stream's 200 must reach the client as soon as the agent sends it.
  reply.hijack();
  const headers = responseHeaders(answer.headers);
  res.writeHead(answer.statusCode, headers);
  // A streamed answer (no length) may be quiet for a while; a sized one goes out with its first chunk.
  if (headers['content-length'] === undefined) res.flushHeaders();
  // An upstream that breaks off mid-body can only cut the response; a client gone destroys the upstream body.
  pipeline(answer.body, res, () => {});
  return reply;
}

/** 504 when the upstream took too long, 502 when it could not be reached or broke off; never a 500. */
export function upstreamError(error: unknown, name: string, details?: Record<string, unknown>): AppError {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return new AppError('AGENT_TIMEOUT', `${name} did not answer in time`, details, { cause: error });
  }
  // A learner's app not listening is not the agent's fault: say which one is missing.
  const unavailable = details?.port === undefined ? 'AGENT_UNAVAILABLE' : 'PORT_UNAVAILABLE';
  return new AppError(unavailable, `${name} is not reachable`, details, { cause: error });
}
