import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { AppError, ERROR_STATUS, type ErrorCode } from '../../shared/errors.js';

/** Turns an error of a process's own kind into an AppError; undefined for anything else. */
export type ErrorMapper = (error: unknown) => AppError | undefined;

// Fastify's own client errors (body parsing, limits) get the project's codes.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_VALIDATION: 'VALIDATION',
  FST_ERR_BAD_URL: 'INVALID_PATH',
  FST_ERR_MAX_PARAM_LENGTH: 'INVALID_PATH',
};

// What Node's HTTP parser refuses before Fastify sees a request; anything else it refuses is malformed HTTP.
const CLIENT_ERRORS: Record<string, [ErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: ['HEADERS_TOO_LARGE', 'the request headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: ['REQUEST_TIMEOUT', 'the request took too long to arrive'],
};

/**
 * Turns anything thrown into an AppError; unknown errors become INTERNAL (and are logged by the caller).
 * `mapError` is the process's own mapping (the agent's file errors), asked after Fastify's codes.
 */
export function toAppError(error: unknown, mapError?: ErrorMapper): AppError {
  if (error instanceof AppError) return error;
  const err = error as Partial<FastifyError> & { code?: string; validation?: unknown; message?: string };
  if (err?.validation) {
    return new AppError('VALIDATION', err.message ?? 'invalid request', { issues: err.validation });
  }
  if (err?.code && FASTIFY_CODES[err.code]) return new AppError(FASTIFY_CODES[err.code]!, err.message ?? err.code);
  const mapped = mapError?.(error);
  if (mapped) return mapped;
  if (err instanceof SyntaxError && (err as { statusCode?: number }).statusCode === 400) {
    return new AppError('INVALID_JSON', err.message);
  }
  const status = (err as { statusCode?: number })?.statusCode;
  if (status && status >= 400 && status < 500) return new AppError('VALIDATION', err.message ?? 'bad request');
  return new AppError('INTERNAL', 'internal error', undefined, { cause: error });
}

// How much of a refused request's body is still read (and dropped) after the answer, and for how long at most.
const LINGER_BYTES = 256 * 1024 * 1024;
const LINGER_MS = 10_000;

/** Sends any error as the project's error body; unknown errors are logged and become INTERNAL. */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply, mapError?: ErrorMapper): FastifyReply {
  const appError = toAppError(error, mapError);
  if (appError.code === 'INTERNAL') request.log.error({ err: error }, 'unhandled error');
  else request.log.info({ code: appError.code }, appError.message);
  lingerOnUnreadBody(request, reply);
  return reply.status(ERROR_STATUS[appError.code]).send(appError.toBody());
}

/**
 * A request refused before its body was read (too large, unauthorised, unknown session) would have its connection
 * closed with that body unread: the kernel then resets it, and the client, still sending, loses the answer. So the
 * rest of the body is read and dropped, within bounds, and the connection stays usable once it has all arrived.
 */
function lingerOnUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw;
  if (raw.complete || raw.destroyed || raw.headers.upgrade) return;
  reply.removeHeader('connection');
  let received = 0;
  const stop = (): void => {
    clearTimeout(timer);
    // Destroying the request destroys its socket; an injected request has no real socket to destroy.
    raw.destroy();
  };
  const timer = setTimeout(stop, LINGER_MS);
  timer.unref();
  raw.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > LINGER_BYTES) stop();
  });
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}

/**
 * Answers what Node's HTTP parser refuses (oversized headers, malformed HTTP) with the same error body as
 * everything else, then drops the connection, as Fastify's default does.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message] = CLIENT_ERRORS[error.code ?? ''] ?? ['VALIDATION', 'malformed HTTP request'];
  const status = ERROR_STATUS[code];
  const body = JSON.stringify(new AppError(code, message).toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/**
 * Fastify options that route errors raised before routing (a malformed percent-encoding in the URL, an over-long
 * parameter, oversized headers, malformed HTTP) through the same error body; pass them to `Fastify({...})`.
 */
export function frameworkErrorOptions(mapError?: ErrorMapper): Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'> {
  return {
    frameworkErrors: (error, request, reply) => void sendError(error, request, reply, mapError),
    clientErrorHandler: answerClientError,
  };
}

/** Answers every error, and every unknown route, with the project's error body. */
export function registerErrorHandling(app: FastifyInstance, mapError?: ErrorMapper): void {
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply, mapError));
  app.setNotFoundHandler((request, reply) => {
    const body = new AppError('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).toBody();
    return reply.status(404).send(body);
  });
}
