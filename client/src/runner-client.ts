import { ControllerRoute, sessionPath } from '../../shared/routes.js';
import { SessionClient } from './session-client.js';
import { Transport, type TransportOptions } from './transport.js';
import type { ControllerHealth, CreateSessionInput, DeleteSessionOptions, DeleteSessionResponse, SessionInfo, SessionList } from './types.js';

export type RunnerClientOptions = TransportOptions;

/** The runner's API: sessions on the controller, and `session(id)` for everything inside one. */
export class RunnerClient {
  readonly transport: Transport;

  constructor(options: RunnerClientOptions) {
    this.transport = new Transport(options);
  }

  health(): Promise<ControllerHealth> {
    return this.transport.json('GET', ControllerRoute.health);
  }

  /** Creates a session and answers once it is running (201). */
  createSession(request: CreateSessionInput): Promise<SessionInfo> {
    return this.transport.json('POST', ControllerRoute.sessions, request);
  }

  getSession(id: string): Promise<SessionInfo> {
    return this.transport.json('GET', sessionPath(id));
  }

  async listSessions(): Promise<SessionInfo[]> {
    return (await this.transport.json<SessionList>('GET', ControllerRoute.sessions)).sessions;
  }

  /** The session now expires `ttlSeconds` from now. */
  extendSession(id: string, ttlSeconds: number): Promise<SessionInfo> {
    return this.transport.json('POST', `${sessionPath(id)}/extend`, { ttl_seconds: ttlSeconds });
  }

  /**
   * Removes the session, its container and volumes; idempotent (`found` says whether it existed). With
   * `keep_workspace: true` the workspace is kept (until `workspace_kept_until`) for a new session of the same id.
   */
  deleteSession(id: string, options: DeleteSessionOptions = {}): Promise<DeleteSessionResponse> {
    const query = options.keep_workspace === undefined ? '' : `?${new URLSearchParams({ keep_workspace: String(options.keep_workspace) })}`;
    return this.transport.json('DELETE', `${sessionPath(id)}${query}`);
  }

  session(id: string): SessionClient {
    return new SessionClient(this.transport, id);
  }
}
