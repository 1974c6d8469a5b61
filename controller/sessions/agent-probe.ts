import { Client } from 'undici';
import { AgentHealth } from '../../shared/schemas/health.js';
import { AgentRoute } from '../../shared/routes.js';

/** Asks a session's agent for its health; null when it does not answer (yet). */
export type ProbeAgent = (socketPath: string, token: string) => Promise<AgentHealth | null>;

const PROBE_TIMEOUT_MS = 2_000;

/** The real probe: `GET /health` over the agent's unix socket with its token. */
export const probeAgentHealth: ProbeAgent = async (socketPath, token) => {
  const client = new Client('http://agent', { socketPath, connectTimeout: PROBE_TIMEOUT_MS });
  try {
    const res = await client.request({
      method: 'GET',
      path: AgentRoute.health,
      headers: { authorization: `Bearer ${token}` },
      headersTimeout: PROBE_TIMEOUT_MS,
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
