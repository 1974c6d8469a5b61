import { z } from 'zod';

/** State of the Docker daemon the agent works with (its own supervised one, or the one it was given). */
export const DaemonHealth = z.object({
  ready: z.boolean(),
  version: z.string().nullable(),
  rootless: z.boolean().nullable(),
  supervised: z.boolean(),
  restarts: z.number().int(),
  last_error: z.string().nullable(),
});
export type DaemonHealth = z.infer<typeof DaemonHealth>;

/** Query of the agent's `GET /health`. */
export const AgentHealthQuery = z.object({
  /** Waits up to this long for the daemon to be ready before answering (a starting session's controller asks once). */
  wait_ready_ms: z.coerce.number().int().min(0).max(10_000).default(0),
});
export type AgentHealthQuery = z.infer<typeof AgentHealthQuery>;

/** `GET /health` of the agent. */
export const AgentHealth = z.object({
  status: z.enum(['starting', 'healthy', 'degraded']),
  uptime_seconds: z.number(),
  daemon: DaemonHealth,
  terminals: z.number().int(),
});
export type AgentHealth = z.infer<typeof AgentHealth>;
