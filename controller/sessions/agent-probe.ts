import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { AppError } from '../../shared/errors.js';
import { AgentHealth } from '../../shared/schemas/health.js';
import { AgentRoute } from '../../shared/routes.js';
import { agentOrigin, type AgentEndpoint } from '../proxy/agent-target.js';
import type { SessionRuntime } from '../runtime/session-runtime.js';

/**
 * Asks a session's agent for its health; null when it does not answer (yet). With `waitReadyMs`, the agent holds
 * the answer until its daemon is ready or that time is over.
 */
export type ProbeAgent = (endpoint: AgentEndpoint, token: string, waitReadyMs?: number) => Promise<AgentHealth | null>;

const PROBE_TIMEOUT_MS = 2_000;
// How long a starting agent may hold each health request until its daemon is ready: short enough to notice a
// daemon that keeps crashing, long enough that a start takes two or three requests instead of a poll every 100 ms.
const READY_WAIT_MS = 2_000;
const READY_POLL_MS = 100;
const CONTAINER_CHECK_EVERY = 10;
// A daemon that crashed this often before it ever answered will not come up: fail now rather than at the timeout.
const MAX_DAEMON_RESTARTS_AT_START = 5;

/** The real probe: `GET /health` on the agent's unix socket or TCP port with its token. */
export const probeAgentHealth: ProbeAgent = async (endpoint, token, waitReadyMs = 0) => {
  const client = new Client(agentOrigin(endpoint), {
    ...(endpoint.kind === 'unix' ? { socketPath: endpoint.socketPath } : {}),
    connectTimeout: PROBE_TIMEOUT_MS,
  });
  try {
    const res = await client.request({
      method: 'GET',
      path: waitReadyMs > 0 ? `${AgentRoute.health}?wait_ready_ms=${waitReadyMs}` : AgentRoute.health,
      headers: { authorization: `Bearer ${token}` },
      headersTimeout: PROBE_TIMEOUT_MS + waitReadyMs,
      bodyTimeout: PROBE_TIMEOUT_MS,
    });
    const body: unknown = await res.body.json().catch(() => null);
    if (res.statusCode !== 200) return null;
    const parsed = AgentHealth.safeParse(body);
    return parsed.success ? parsed.data : null;
  } catch {
    // Not listening yet (ENOENT, ECONNREFUSED) or too slow: the caller retries until its deadline.
    return null;
  } finally {
    await client.close().catch(() => {});
  }
};

export interface WaitReadyOptions {
  probeAgent: ProbeAgent;
  runtime: SessionRuntime;
  endpoint: AgentEndpoint;
  token: string;
  containerName: string;
  timeoutMs: number;
  /** Stops waiting (the controller is closing); the wait then rejects with an AbortError. */
  signal?: AbortSignal;
}

/**
 * Asks a starting session's agent until it is healthy with its inner daemon ready. Throws SESSION_START_FAILED
 * (with the daemon's last error when the agent gave one) if the container stops, the daemon keeps crashing, or
 * the time runs out.
 */
export async function waitAgentReady(options: WaitReadyOptions): Promise<void> {
  const { probeAgent, runtime, endpoint, token, containerName, timeoutMs, signal } = options;
  const deadline = performance.now() + timeoutMs;
  let last: AgentHealth | null = null;
  // The agent's own account of its daemon explains a failure better than its logs.
  const failed = (message: string): AppError =>
    new AppError('SESSION_START_FAILED', message, last ? { daemon_error: last.daemon.last_error } : undefined);
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const asked = performance.now();
    const health = await probeAgent(endpoint, token, Math.max(0, Math.min(READY_WAIT_MS, Math.floor(deadline - asked))));
    last = health ?? last;
    if (health?.status === 'healthy' && health.daemon.ready) return;
    if (health && health.daemon.restarts >= MAX_DAEMON_RESTARTS_AT_START) {
      throw failed(`the session's inner Docker daemon failed to start ${health.daemon.restarts} times`);
    }
    if (attempt % CONTAINER_CHECK_EVERY === 0) {
      const container = await runtime.inspectSession(containerName);
      if (!container || container.state === 'stopped') throw failed('the session container stopped while starting');
    }
    if (performance.now() > deadline) throw failed(`the session's agent was not ready within ${timeoutMs / 1000} s`);
    // An agent that answered at once (not listening yet, or an older one that does not wait) is asked after a pause.
    if (performance.now() - asked < READY_POLL_MS) await sleep(READY_POLL_MS, undefined, { signal });
  }
}
