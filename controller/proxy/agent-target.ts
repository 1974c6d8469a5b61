/**
 * How the controller dials a session's agent: its unix socket in the session's host folder (Docker), or TCP at the
 * session's address (Kubernetes, where the agent runs in a pod on another node).
 */
export type AgentEndpoint = { kind: 'unix'; socketPath: string } | { kind: 'tcp'; host: string; port: number };

/** Where a session's agent listens, and how the proxy proves it may talk to it. */
export interface AgentTarget {
  endpoint: AgentEndpoint;
  /** The session agent's own bearer token; the client's token is never forwarded. */
  token: string;
  /** The session's IP, where ports published inside the session are reached. */
  address: string;
}

/** Finds a session's agent; throws AppError SESSION_NOT_FOUND or SESSION_NOT_READY. */
export type ResolveAgent = (sessionId: string) => Promise<AgentTarget>;

/** `host:port`, with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The origin a request to the agent names: over a socket it only fills the Host header. */
export function agentOrigin(endpoint: AgentEndpoint): string {
  return endpoint.kind === 'unix' ? 'http://agent' : `http://${hostPort(endpoint.host, endpoint.port)}`;
}

/** The WebSocket URL of `path` on the agent (ws's `ws+unix://` form for a socket). */
export function agentWebSocketUrl(endpoint: AgentEndpoint, path: string): string {
  return endpoint.kind === 'unix' ? `ws+unix://${endpoint.socketPath}:${path}` : `ws://${hostPort(endpoint.host, endpoint.port)}${path}`;
}

/** One key per agent, for pooling connections to it. */
export function endpointKey(endpoint: AgentEndpoint): string {
  return endpoint.kind === 'unix' ? `unix:${endpoint.socketPath}` : `tcp:${hostPort(endpoint.host, endpoint.port)}`;
}
