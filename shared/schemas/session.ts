import { z } from 'zod';

/**
 * A session id as the backend chooses it: lowercase letters, digits, `-` and `_`, starting with a letter or digit,
 * at most 48 characters (it becomes part of container, volume and socket path names).
 */
export const SessionId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,47}$/, 'lowercase letters, digits, - and _, starting with a letter or digit, at most 48 characters');
export type SessionId = z.infer<typeof SessionId>;

/** A time to live in whole seconds; the controller bounds it by its `MAX_TTL_SECONDS`. */
export const TtlSeconds = z.number().int().positive();

/** A template's name: one folder name of the controller's `TEMPLATES_DIR` (no `/`, not starting with `.`). */
export const TemplateName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'one folder name: letters, digits, _ . -, not starting with .');
export type TemplateName = z.infer<typeof TemplateName>;

/**
 * `POST /sessions`. Without `ttl_seconds` the controller's `SESSION_TTL_SECONDS` applies. `workspace.template`
 * seeds the workspace from `TEMPLATES_DIR/<template>/`; a workspace kept for this id comes back instead.
 */
export const CreateSessionRequest = z.object({
  session_id: SessionId,
  ttl_seconds: TtlSeconds.optional(),
  workspace: z.strictObject({ template: TemplateName }).optional(),
});
export type CreateSessionRequest = z.infer<typeof CreateSessionRequest>;

/** `POST /sessions/{id}/extend`: the session now expires `ttl_seconds` from now (this may also shorten it). */
export const ExtendSessionRequest = z.object({
  ttl_seconds: TtlSeconds,
});
export type ExtendSessionRequest = z.infer<typeof ExtendSessionRequest>;

/**
 * Where a session is in its life: `creating` until its agent and inner daemon answer, `running`, `restarting`
 * (Docker restarts it after a crash), `stopped` (its container is not running).
 */
export const SessionStatus = z.enum(['creating', 'running', 'restarting', 'stopped']);
export type SessionStatus = z.infer<typeof SessionStatus>;

/**
 * What a running session uses now, read from its cgroup and its volumes and cached for a few seconds (one read per
 * session per `USAGE_TTL_SECONDS` at most). A figure the runtime cannot tell is null.
 */
export const SessionUsage = z.object({
  /** Memory in use as `docker stats` counts it: the cgroup's usage less its inactive file cache. */
  memory_bytes: z.number().int().nonnegative().nullable(),
  /** The session's memory limit (`CONTAINER_MEMORY_LIMIT`); null when there is none. */
  memory_limit_bytes: z.number().int().nonnegative().nullable(),
  /** CPU time the session's processes used since it started, all cores together. */
  cpu_seconds: z.number().nonnegative().nullable(),
  /** Processes and threads in the session now (its pids cgroup, counted against `CONTAINER_PIDS_LIMIT`). */
  pids: z.number().int().nonnegative().nullable(),
  /**
   * Bytes on disk of the workspace and the inner daemon's data together. With a session filesystem
   * (`SESSION_DISK_LIMIT`) a statfs of it; without, a walk of the two volumes in the background every
   * `USAGE_DISK_WALK_SECONDS`, so null until the first walk finished.
   */
  disk_bytes: z.number().int().nonnegative().nullable(),
  /** When the cgroup figures were read (ISO 8601, UTC). */
  measured_at: z.string(),
});
export type SessionUsage = z.infer<typeof SessionUsage>;

/** A session as `POST /sessions` (201), `GET /sessions/{id}` and `POST /sessions/{id}/extend` answer it. */
export const SessionInfo = z.object({
  session_id: SessionId,
  container_name: z.string(),
  status: SessionStatus,
  /** ISO 8601, UTC. */
  created_at: z.string(),
  /** ISO 8601, UTC; the session and its data are removed after this. */
  expires_at: z.string(),
  /**
   * On `GET /sessions/{id}` and `GET /sessions`: what the session uses, or null when it is not running or the
   * runtime does not measure it (Kubernetes).
   */
  usage: SessionUsage.nullable().optional(),
});
export type SessionInfo = z.infer<typeof SessionInfo>;

/** `GET /sessions`. */
export const SessionList = z.object({
  sessions: z.array(SessionInfo),
});
export type SessionList = z.infer<typeof SessionList>;

/** `DELETE /sessions/{id}`: idempotent; `found` says whether there was anything to remove. */
export const DeleteSessionResponse = z.object({
  session_id: SessionId,
  status: z.literal('deleted'),
  found: z.boolean(),
  /** With `?keep_workspace=true`: until when a new session of this id gets the workspace back (ISO 8601). */
  workspace_kept_until: z.string().optional(),
});

/** Query of `DELETE /sessions/{id}`: `keep_workspace=true` keeps the workspace for `KEPT_WORKSPACE_TTL_SECONDS`. */
export const DeleteSessionQuery = z.object({
  keep_workspace: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
});
export type DeleteSessionResponse = z.infer<typeof DeleteSessionResponse>;

/** Path parameters of `/sessions/{id}` routes. */
export const SessionParams = z.object({
  id: SessionId,
});
export type SessionParams = z.infer<typeof SessionParams>;

/** `GET /health` of the controller, exactly the seed's shape. */
export const ControllerHealth = z.object({
  status: z.enum(['healthy', 'unhealthy']),
  active_sessions: z.number().int().nonnegative(),
  docker_available: z.boolean(),
});
export type ControllerHealth = z.infer<typeof ControllerHealth>;
