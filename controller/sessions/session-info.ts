import { AppError } from '../../shared/errors.js';
import type { SessionInfo, SessionStatus } from '../../shared/schemas/session.js';
import type { RuntimeSession } from '../runtime/session-runtime.js';
import type { SessionRecord } from './session-table.js';

/** What a client sees of a session: its record, and the status its container is in. */
export function sessionInfo(record: SessionRecord, status: SessionStatus): SessionInfo {
  return {
    session_id: record.id,
    container_name: record.containerName,
    status,
    created_at: record.createdAt.toISOString(),
    expires_at: record.expiresAt.toISOString(),
  };
}

/** A ready session's status from its container's state. */
export function sessionStatusOf(container: RuntimeSession): SessionStatus {
  if (container.state === 'running') return 'running';
  if (container.state === 'restarting') return 'restarting';
  return 'stopped';
}

/** The error for a session that does not exist for clients (unknown, or past its time). */
export function sessionNotFound(sessionId: string): AppError {
  return new AppError('SESSION_NOT_FOUND', `no session ${sessionId}`);
}
