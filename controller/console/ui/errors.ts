import { RunnerError } from '../../../client/src/index.js';

/** What an operator should read for an error: the code's meaning first, the runner's own message after. */
export function describeError(error: unknown): string {
  if (!(error instanceof RunnerError)) return error instanceof Error ? error.message : String(error);
  const hint: Partial<Record<RunnerError['code'], string>> = {
    SESSION_NOT_FOUND: 'This session does not exist any more (it may have expired or been deleted).',
    TOO_MANY_SESSIONS: 'The runner is at its session limit (429): delete a session or try again later.',
    HOST_DISK_FULL: "The runner's host is short of disk space for another session (507): delete sessions or free space on the host.",
    TOO_MANY_TERMINALS: 'This session runs its maximum of terminals (429): close one first.',
    AGENT_UNAVAILABLE: "The session's agent is not answering: the session may be restarting or stopped.",
    AGENT_TIMEOUT: "The session's agent took too long to answer.",
    SESSION_NOT_READY: 'The session is still starting: try again in a moment.',
    UNAUTHORIZED: 'The API token was refused: sign in again.',
    DOCKER_UNAVAILABLE: "The runner's Docker engine is not available.",
  };
  const prefix = hint[error.code];
  return `${prefix ? `${prefix} ` : ''}[${error.code}] ${error.message}`;
}
