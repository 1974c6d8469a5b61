/**
 * Docker label keys the controller puts on everything it creates (containers, volumes, the network), so that
 * after a restart it can find what it owns and nothing else.
 */
export const Label = {
  /** Always `MANAGED_BY` on the controller's resources. */
  managedBy: 'io.runner.managed-by',
  /** Which controller owns it (`RUNNER_INSTANCE`): several can share one engine without touching each other's. */
  instance: 'io.runner.instance',
  /** The session's id as the client gave it. */
  sessionId: 'io.runner.session-id',
  /**
   * Instead of a session id, on what the warm pool started ahead of any session: the member's pool id. It stays
   * after a session claims the member (labels are immutable); the session's state file then names the pool id.
   */
  poolId: 'io.runner.pool-id',
  /** ISO time the session was created. */
  createdAt: 'io.runner.created-at',
  /** ISO time the session first expires; an extension lives in the session's state file (labels are immutable). */
  expiresAt: 'io.runner.expires-at',
  /** On a kept workspace volume: the id of the session that gets it back. */
  keptSessionId: 'io.runner.kept-session-id',
  /** On a kept workspace volume: ISO time after which the sweep removes it. */
  keptUntil: 'io.runner.kept-until',
  /** On volumes: what the volume holds (`workspace`, `docker` or `kept-workspace`). */
  volumeRole: 'io.runner.volume-role',
} as const;

/** The value of `Label.managedBy`. */
export const MANAGED_BY = 'runner-controller';
