import { AppError, type ErrorCode } from '../../shared/errors.js';

/** What dockerode (docker-modem) puts on the errors it rejects with. */
interface DaemonError {
  code?: string;
  syscall?: string;
  statusCode?: number;
  json?: unknown;
  message?: string;
}

// Errors of the connection itself: the daemon is down, restarting, or its socket is not there (yet).
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const PORT_IN_USE = /port is already allocated|address already in use/i;

/** The connection to the daemon failed (as opposed to the daemon answering with an error). */
export function isDaemonUnreachable(error: unknown): boolean {
  const err = error as DaemonError | undefined;
  if (!err?.code || err.statusCode !== undefined) return false;
  // A missing or forbidden socket fails in connect(); the same codes from elsewhere (a build context file) are not the daemon's.
  if (err.code === 'ENOENT' || err.code === 'EACCES') return err.syscall === 'connect';
  return UNREACHABLE.has(err.code);
}

/** The HTTP status the daemon answered with; undefined when it did not answer. */
export function daemonStatus(error: unknown): number | undefined {
  return (error as DaemonError | null | undefined)?.statusCode;
}

/** The daemon's own words: its JSON `message`, or docker-modem's message without its `(HTTP code N) reason - ` prefix. */
export function daemonMessage(error: unknown): string {
  const err = error as DaemonError | undefined;
  const json = err?.json as { message?: unknown } | undefined;
  if (json && typeof json === 'object' && !Buffer.isBuffer(json) && typeof json.message === 'string') return json.message;
  return (err?.message ?? String(error)).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

/** 503 DOCKER_UNAVAILABLE for a daemon that cannot be reached; `action` says what could not be done. */
export function toUnavailableError(error: unknown, action?: string): AppError {
  const reason = `the Docker daemon is not reachable (${(error as DaemonError).code})`;
  return new AppError('DOCKER_UNAVAILABLE', action ? `${reason}: could not ${action}` : reason, undefined, { cause: error });
}

/**
 * Maps a dockerode failure to the client's error: 503 when the daemon cannot be reached, the daemon's own 4xx
 * as a 4xx code, anything else as 502 DOCKER_ERROR. `notFound` names what a 404 means for the caller.
 */
export function toDockerError(error: unknown, notFound: ErrorCode = 'CONTAINER_NOT_FOUND'): AppError {
  if (error instanceof AppError) return error;
  if (isDaemonUnreachable(error)) return toUnavailableError(error);
  const status = daemonStatus(error);
  const message = daemonMessage(error);
  if (PORT_IN_USE.test(message)) return new AppError('PORT_IN_USE', message);
  if (status === 404) {
    if (/no such image/i.test(message)) return new AppError('IMAGE_NOT_FOUND', message);
    if (/no such container/i.test(message)) return new AppError('CONTAINER_NOT_FOUND', message);
    return new AppError(notFound, message);
  }
  if (status === 409) return new AppError('CONTAINER_CONFLICT', message);
  if (status !== undefined && status >= 400 && status < 500) return new AppError('VALIDATION', message);
  return new AppError('DOCKER_ERROR', message || 'the Docker daemon failed');
}
