import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode } from '../../shared/errors.js';
import { toAppError } from '../../core/http/error-handler.js';

/** An answer of the flat API that is not a success: its status and `{detail, …}` body, as ContainrLab's clients read them. */
export class CompatError extends Error {
  override readonly name = 'CompatError';

  constructor(
    readonly statusCode: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.detail === 'string' ? body.detail : 'request failed');
  }
}

// Where ContainrLab answers another status than this runner's error table: a session that is not running is 409,
// a path outside the workspace or not a file is 400.
const STATUS_OVERRIDES: Partial<Record<ErrorCode, number>> = {
  SESSION_NOT_READY: 409,
  AGENT_UNAVAILABLE: 409,
  AGENT_TIMEOUT: 409,
  PATH_OUTSIDE_WORKSPACE: 400,
  INVALID_PATH: 400,
  IS_A_DIRECTORY: 400,
  NOT_A_DIRECTORY: 400,
};

/** `{detail}`; with logs (a failed build or run) also `error` and `logs` at the top level, where the judges read them. */
export function compatBody(message: string, logs?: unknown): Record<string, unknown> {
  if (!Array.isArray(logs)) return { detail: message };
  return { detail: { error: message, logs }, error: message, logs };
}

/** A runner error (from a route or an agent's error body) as the flat API answers it. */
export function toCompatError(code: ErrorCode, message: string, logs?: unknown, statusCode?: number): CompatError {
  return new CompatError(STATUS_OVERRIDES[code] ?? statusCode ?? new AppError(code, message).statusCode, compatBody(message, logs));
}

/** The flat API's error handler: a malformed body is 422 with the issues, everything else `{detail}`. */
export function sendCompatError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof CompatError) return reply.status(error.statusCode).send(error.body);
  const fastifyError = error as Partial<FastifyError> & { validation?: { instancePath?: string; message?: string }[] };
  if (fastifyError.validation) {
    const detail = fastifyError.validation.map((issue) => ({
      loc: ['body', ...(issue.instancePath ?? '').split('/').filter(Boolean)],
      msg: issue.message ?? 'invalid',
      type: 'value_error',
    }));
    return reply.status(422).send({ detail });
  }
  // A body that is not JSON at all, or not sent as JSON, is malformed too.
  if (typeof fastifyError.statusCode === 'number' && [400, 415].includes(fastifyError.statusCode) && fastifyError.code?.startsWith('FST_')) {
    return reply.status(422).send({ detail: fastifyError.message ?? 'malformed request body' });
  }
  const appError = toAppError(error);
  if (appError.code === 'INTERNAL') request.log.error({ err: error }, 'containrlab route failed');
  const compat = toCompatError(appError.code, appError.message, appError.details?.logs);
  return reply.status(compat.statusCode).send(compat.body);
}
