import { z } from 'zod';

/** Every error code either process can answer with, and the HTTP status that goes with it. */
export const ERROR_STATUS = {
  VALIDATION: 400,
  INVALID_JSON: 400,
  INVALID_PATH: 400,
  ARCHIVE_INVALID: 400,
  GRANT_UNKNOWN_CAPABILITY: 400,
  GRANT_PORT_OUT_OF_RANGE: 400,
  UNAUTHORIZED: 401,
  GRANT_MISSING: 401,
  GRANT_TAMPERED: 401,
  GRANT_EXPIRED: 401,
  GRANT_USED: 401,
  GRANT_REVOKED: 401,
  PERMISSION_DENIED: 403,
  PATH_OUTSIDE_WORKSPACE: 403,
  HARD_LINK_REFUSED: 403,
  GRANT_WRONG_SESSION: 403,
  GRANT_WRONG_CAPABILITY: 403,
  GRANT_WRONG_PORT: 403,
  GRANT_WRONG_TERMINAL: 403,
  GRANT_WRONG_ORIGIN: 403,
  ROUTE_NOT_FOUND: 404,
  PREVIEW_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  CONTAINER_NOT_FOUND: 404,
  TERMINAL_NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  TEMPLATE_NOT_FOUND: 404,
  COMMAND_NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  ALREADY_EXISTS: 409,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  DIRECTORY_NOT_EMPTY: 409,
  CONTAINER_CONFLICT: 409,
  PORT_IN_USE: 409,
  SESSION_EXISTS: 409,
  PREVIEWS_OFF: 409,
  PAYLOAD_TOO_LARGE: 413,
  ARCHIVE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BUILD_FAILED: 422,
  RUN_FAILED: 422,
  ARCHIVE_REFUSED: 422,
  UPGRADE_REQUIRED: 426,
  TOO_MANY_TERMINALS: 429,
  TOO_MANY_SESSIONS: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  DOCKER_ERROR: 502,
  AGENT_UNAVAILABLE: 502,
  PORT_UNAVAILABLE: 502,
  DOCKER_UNAVAILABLE: 503,
  SESSION_NOT_READY: 503,
  SESSION_START_FAILED: 503,
  CONSOLE_NOT_BUILT: 503,
  RUNTIME_FEATURE_MISSING: 503,
  NO_SPACE: 507,
  HOST_DISK_FULL: 507,
  AGENT_TIMEOUT: 504,
} as const satisfies Record<string, number>;

/** Machine-readable error code carried in every error body. */
export const ErrorCode = z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS, ...(keyof typeof ERROR_STATUS)[]]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** The one shape of every error response: `{code, message, ...details}`. */
export const ErrorBody = z.looseObject({
  code: ErrorCode,
  message: z.string(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The one error class both processes throw; the error handler turns it into an ErrorBody. */
export class AppError extends Error {
  override readonly name = 'AppError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  get statusCode(): number {
    return ERROR_STATUS[this.code];
  }

  toBody(): ErrorBody {
    return { ...this.details, code: this.code, message: this.message };
  }
}
