import type { FastifyInstance } from 'fastify';
import { ErrorCode } from '../../shared/errors.js';
import { sessionPath } from '../../shared/routes.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { toCompatError } from './compat-errors.js';

/** One agent answer: its status and body bytes. */
export interface AgentAnswer {
  statusCode: number;
  raw: Buffer;
  json<T>(): T;
}

/**
 * Calls a session's agent through the controller's own `/sessions/{id}/…` proxy (inject, no socket): the same
 * route, auth and proxy every other client uses. A session that does not exist is 404, one not running 409, and an
 * agent error the flat API's `{detail}`.
 */
export class SessionAgent {
  constructor(
    private readonly app: FastifyInstance,
    private readonly sessions: SessionManager,
    private readonly apiToken: string | undefined,
  ) {}

  async call(
    sessionId: string,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AgentAnswer> {
    await this.requireRunning(sessionId);
    const raw = Buffer.isBuffer(body);
    const res = await this.app.inject({
      method,
      url: `${sessionPath(sessionId)}${path}`,
      headers: {
        ...(this.apiToken ? { authorization: `Bearer ${this.apiToken}` } : {}),
        ...(body === undefined ? {} : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: raw ? (body as Buffer) : JSON.stringify(body) }),
    });
    const answer: AgentAnswer = { statusCode: res.statusCode, raw: res.rawPayload, json: <T>() => res.json() as T };
    if (res.statusCode >= 400) throw agentError(answer);
    return answer;
  }

  /** Throws 404 for an unknown session and 409 for one that is not running. */
  async requireRunning(sessionId: string): Promise<void> {
    const session = await this.sessions.get(sessionId);
    if (session.status !== 'running') throw toCompatError('SESSION_NOT_READY', 'Runner session is not running');
  }
}

function agentError(answer: AgentAnswer): Error {
  let body: { code?: unknown; message?: unknown; logs?: unknown } = {};
  try {
    body = answer.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const code = ErrorCode.safeParse(body.code);
  const message = typeof body.message === 'string' ? body.message : `the session answered ${answer.statusCode}`;
  return toCompatError(code.success ? code.data : 'AGENT_UNAVAILABLE', message, body.logs, answer.statusCode);
}
