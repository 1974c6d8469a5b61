import type { Readable } from 'node:stream';
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

/** How much of an answer may wait in memory for a slow client before the upstream is paused. */
const CLIENT_BUFFER_BYTES = 1024 * 1024;

/**
 * Streams the request to the upstream and its answer back, status, headers and body unchanged. The answer's chunks
 * go straight from undici's parser into the client's socket: no Readable in between, which per chunk cost more CPU
 * than the copy itself.
 */
export function forwardHttp(request: FastifyRequest, reply: FastifyReply, upstream: HttpUpstream): Promise<FastifyReply> {
  const res = reply.raw;
  return new Promise((resolve, reject) => {
    let upstreamRequest: Dispatcher.DispatchController | undefined;
    let clientGone = false;
    let answered = false;
    // A client that goes away before the answer is complete cancels the upstream request.
    res.once('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      upstreamRequest?.abort(new Error('the client went away'));
    });
    const resumeUpstream = () => upstreamRequest?.resume();
    upstream.dispatcher.dispatch(
      {
        origin: upstream.origin,
        path: upstream.path,
        method: request.method as Dispatcher.HttpMethod,
        headers: upstream.headers,
        body: (request.body as Readable | undefined) ?? null,
        headersTimeout: upstream.headersTimeoutMs,
        bodyTimeout: upstream.bodyTimeoutMs,
      },
      {
        onRequestStart(controller) {
          upstreamRequest = controller;
          if (clientGone) controller.abort(new Error('the client went away'));
        },
        onResponseStart(_controller, statusCode, headers) {
          answered = true;
          // Written here rather than by reply.send, which would hold the status until the first body chunk and turn
          // an upstream that breaks off before it into a 500: a stream's 200 must reach the client at once.
          reply.hijack();
          const outgoing = responseHeaders(headers);
          res.writeHead(statusCode, outgoing);
          // A streamed answer (no length) may be quiet for a while; a sized one goes out with its first chunk.
          if (outgoing['content-length'] === undefined) res.flushHeaders();
          resolve(reply);
        },
        onResponseData(controller, chunk) {
          res.write(chunk);
          // A slow client pauses the upstream rather than piling its answer up in memory. Not at the socket's own
          // 16 KiB mark, which every 64 KiB chunk passes: a pause and resume per chunk cost more than the copy.
          if (res.writableLength >= CLIENT_BUFFER_BYTES) {
            controller.pause();
            res.once('drain', resumeUpstream);
          }
        },
        onResponseEnd() {
          // A late drain must not resume the next request on this upstream connection.
          res.off('drain', resumeUpstream);
          res.end();
        },
        onResponseError(_controller, error) {
          // An upstream that breaks off mid-body can only cut the response.
          if (answered) return void res.destroy();
          // Nobody is left to answer when the client itself went away.
          if (clientGone) return resolve(reply.hijack());
          reject(upstreamError(error, upstream.name, upstream.details));
        },
      },
    );
  });
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
