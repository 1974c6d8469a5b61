import { AppError } from '../../shared/errors.js';
import { daemonMessage, isDaemonUnreachable, toUnavailableError } from '../../core/docker/docker-errors.js';

/** An engine failure as the controller answers it: the engine unreachable, or what it said it could not do. */
export function toRuntimeError(error: unknown, action: string, code: 'DOCKER_ERROR' | 'SESSION_START_FAILED' = 'DOCKER_ERROR'): AppError {
  if (error instanceof AppError) return error;
  if (isDaemonUnreachable(error)) return toUnavailableError(error, action);
  return new AppError(code, `could not ${action}: ${daemonMessage(error)}`, undefined, { cause: error });
}
