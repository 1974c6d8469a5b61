/** What the controller asks of a runtime to start one session. */
export interface SessionSpec {
  sessionId: string;
  containerName: string;
  /** Host folder mounted into the session: holds the agent's token file; the agent creates its socket there. */
  agentDir: string;
  createdAt: Date;
  expiresAt: Date;
}

/** A session's container as the runtime sees it. */
export interface RuntimeSession {
  sessionId: string;
  containerName: string;
  state: 'created' | 'running' | 'restarting' | 'stopped';
  /** The session's address on the sessions network (for reaching ports published inside it), when running. */
  address: string | null;
  createdAt: Date | null;
  /** The expiry the session was created with (extensions are kept by the controller, not the runtime). */
  expiresAt: Date | null;
}

/** A volume the runtime made for a session. */
export interface RuntimeVolume {
  name: string;
  sessionId: string;
}

/**
 * The controller's only way to reach the container engine (testcontainers' ContainerClient habit): one Docker
 * implementation, and room for another engine. Every method throws AppError (DOCKER_UNAVAILABLE, DOCKER_ERROR,
 * SESSION_EXISTS, SESSION_START_FAILED), never a raw engine error.
 */
export interface SessionRuntime {
  /** True when the engine answers. */
  ping(): Promise<boolean>;
  /** Creates the session's volumes and container on the sessions network and starts it. */
  createSession(spec: SessionSpec): Promise<RuntimeSession>;
  /** The session's container, or null when there is none. */
  inspectSession(containerName: string): Promise<RuntimeSession | null>;
  /** Every session container this controller owns, running or not. */
  listSessions(): Promise<RuntimeSession[]>;
  /** Starts a stopped session container again. */
  startSession(containerName: string): Promise<void>;
  /** Removes the container (if any) and every volume of the session; idempotent. */
  removeSession(sessionId: string, containerName: string): Promise<void>;
  /** Every session volume this controller owns. */
  listVolumes(): Promise<RuntimeVolume[]>;
  removeVolume(name: string): Promise<void>;
  /** The last lines a session's container printed, to explain a failed start. */
  tailLogs(containerName: string, lines: number): Promise<string[]>;
}
