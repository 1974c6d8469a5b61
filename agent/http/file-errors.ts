import { AppError, type ErrorCode } from '../../shared/errors.js';
import { toAppError } from '../../core/http/error-handler.js';

// Node's file-system errors mapped once, so routes can let them propagate; the raw message would name absolute
// host paths, so the client gets only the reason.
const ERRNO_ERRORS: Record<string, [ErrorCode, string]> = {
  ENOENT: ['FILE_NOT_FOUND', 'no such file or directory'],
  EISDIR: ['IS_A_DIRECTORY', 'is a directory'],
  ENOTDIR: ['NOT_A_DIRECTORY', 'not a directory'],
  EEXIST: ['ALREADY_EXISTS', 'already exists'],
  ENOTEMPTY: ['DIRECTORY_NOT_EMPTY', 'directory not empty'],
  EACCES: ['PERMISSION_DENIED', 'permission denied'],
  EPERM: ['PERMISSION_DENIED', 'operation not permitted'],
  ENOSPC: ['NO_SPACE', 'no space left on device'],
  EDQUOT: ['NO_SPACE', 'disk quota exceeded'],
  ENAMETOOLONG: ['INVALID_PATH', 'name too long'],
  ELOOP: ['INVALID_PATH', 'too many levels of symbolic links'],
  EINVAL: ['INVALID_PATH', 'invalid path'],
};

/** The agent's own error mapping: a file-system errno as the file error a client can act on. */
export function toFileError(error: unknown): AppError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  const known = typeof code === 'string' && Object.hasOwn(ERRNO_ERRORS, code) ? ERRNO_ERRORS[code] : undefined;
  return known && new AppError(known[0], known[1]);
}

/** Any error the agent throws as the client sees it. */
export function toAgentError(error: unknown): AppError {
  return toAppError(error, toFileError);
}
