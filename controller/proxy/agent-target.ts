/** Where a session's agent listens, and how the proxy proves it may talk to it. */
export interface AgentTarget {
  /** The agent's unix socket on the host (one per session). */
  socketPath: string;
  /** The session agent's own bearer token; the client's token is never forwarded. */
  token: string;
  /** The session container's IP, where ports published inside the session are reached. */
  address: string;
}

/** Finds a session's agent; throws AppError SESSION_NOT_FOUND or SESSION_NOT_READY. */
export type ResolveAgent = (sessionId: string) => Promise<AgentTarget>;
