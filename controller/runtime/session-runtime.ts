/**
 * Whose a container, its volumes and its folder are: a session's (started cold), or a warm pool member's. A member
 * keeps its pool id on its container and volumes for good, also once a session claimed it.
 */
export type SessionOwner = { kind: 'session'; sessionId: string } | { kind: 'pool'; poolId: string };

/** What the controller asks of a runtime to start one session. */
export interface SessionSpec {
  owner: SessionOwner;
  containerName: string;
  /** Host folder mounted into the session (Docker): holds the agent's token file; the agent creates its socket there. */
  agentDir?: string;
  createdAt: Date;
  /** None for a pool member: its time starts when a session claims it (and lives in the state file). */
  expiresAt?: Date;
  /** A kept workspace volume whose content the new workspace starts with (it stays until the caller removes it). */
  restoreWorkspaceFrom?: string;
}

/** A workspace kept after its session was deleted, for a new session of that id. */
export interface KeptWorkspace {
  volume: string;
  sessionId: string;
  until: Date;
}

/** A session's container as the runtime sees it. */
export interface RuntimeSession {
  /** Whose its labels say it is; null for a container under that name that nobody owns (made by hand). */
  owner: SessionOwner | null;
  containerName: string;
  state: 'created' | 'running' | 'restarting' | 'stopped';
  /** The session's address on the sessions network (for reaching ports published inside it), when running. */
  address: string | null;
  createdAt: Date | null;
  /** The expiry the session was created with (extensions are kept by the controller, not the runtime). */
  expiresAt: Date | null;
}

/** A container a listing found: it always has an owner. */
export type OwnedRuntimeSession = RuntimeSession & { owner: SessionOwner };

/** A volume the runtime made for a session (or its own filesystem, `disk:<key>`: removeVolume takes either). */
export interface RuntimeVolume {
  name: string;
  owner: SessionOwner;
}

/** What a running session uses now, as a runtime reads it cheaply; null where it cannot tell. */
export interface RuntimeUsage {
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  cpuSeconds: number | null;
  pids: number | null;
  /** Workspace and inner daemon data, when a cheap look tells (a session filesystem); absent when it takes a walk. */
  diskBytes?: number | null;
}

/**
 * The controller's only way to reach the container engine (testcontainers' ContainerClient habit): one Docker
 * implementation, and room for another engine. Every method throws AppError (DOCKER_UNAVAILABLE, DOCKER_ERROR,
 * SESSION_EXISTS, SESSION_START_FAILED), never a raw engine error.
 */
export interface SessionRuntime {
  /** Several controllers share these sessions (replicas in a cluster): a look-up asks the runtime, not memory alone. */
  readonly shared?: boolean;
  /** True when the engine answers. */
  ping(): Promise<boolean>;
  /** Creates the session's volumes and container on the sessions network and starts it. */
  createSession(spec: SessionSpec): Promise<RuntimeSession>;
  /** The session's container, or null when there is none. */
  inspectSession(containerName: string): Promise<RuntimeSession | null>;
  /** Every session container this controller owns, running or not: one cheap look, for a reconcile and for GET /sessions. */
  listSessions(): Promise<OwnedRuntimeSession[]>;
  /**
   * What every reconcile (the start, the periodic sweep) does before it lists: learns again what may have changed
   * behind the controller's back (a network made later, rules lost to a flush). Kept out of listSessions, which an
   * API read calls: on Docker it runs iptables. Never throws. Optional: a runtime with nothing to keep up leaves it out.
   */
  upkeep?(): Promise<void>;
  /**
   * Gives the session's root the agent folder and its token file, after the controller wrote a new token (a
   * remapped engine's root is not the host's, and cannot read what the host's root made); a no-op elsewhere.
   * createSession does it itself. Optional: a runtime that does not mount the folder leaves it out.
   */
  handOverAgentDir?(dir: string): Promise<void>;
  /** Starts a stopped session container again. */
  startSession(containerName: string): Promise<void>;
  /** Removes the container under that name if `owner` owns it, and every volume of `owner`; idempotent. */
  removeSession(owner: SessionOwner, containerName: string): Promise<void>;
  /** Renames a container, running or not (a claimed pool member takes its session's name); SESSION_EXISTS if taken. */
  renameSession(containerName: string, newName: string): Promise<void>;
  /** Every session volume this controller owns. */
  listVolumes(): Promise<RuntimeVolume[]>;
  removeVolume(name: string): Promise<void>;
  /**
   * Stops the container under `containerName` if `owner` owns it and copies the owner's workspace into a kept
   * workspace for `sessionId` until `until` (replacing an older one). Null when the owner has no workspace.
   */
  keepWorkspace(owner: SessionOwner, containerName: string, sessionId: string, until: Date): Promise<KeptWorkspace | null>;
  /** The kept workspace of a session id, expired or not, or null. */
  findKeptWorkspace(sessionId: string): Promise<KeptWorkspace | null>;
  /** Every kept workspace this controller owns. */
  listKeptWorkspaces(): Promise<KeptWorkspace[]>;
  /** The last lines a session's container printed, to explain a failed start. */
  tailLogs(containerName: string, lines: number): Promise<string[]>;
  /**
   * Tells `listener` the sessions network's address ranges (CIDR) as soon as they are known (none while the network
   * does not exist) and again whenever the runtime makes or finds the network, always before a session starts on
   * it: every connection a session or anything inside it opens comes from one of them. Never throws. Optional: a
   * runtime whose sessions cannot reach the controller's host leaves it out.
   */
  watchSessionSubnets?(listener: (subnets: string[]) => void): Promise<void>;
  /**
   * What the session under that name uses now, read cheaply (a few files): null when it is not running. Optional: a
   * runtime that cannot measure its sessions leaves it out, and sessions then report no usage.
   */
  readUsage?(containerName: string): Promise<RuntimeUsage | null>;
  /**
   * Bytes free on the host filesystem that holds the sessions' own filesystems, or null when sessions have none
   * (SESSION_DISK_LIMIT=0). Optional: a runtime whose sessions' storage is not on this host leaves it out.
   */
  diskFreeBytes?(): Promise<number | null>;
  /** The session's disk bytes by walking its storage: slow, so the controller calls it in the background only. */
  walkDiskUsage?(containerName: string): Promise<number | null>;
  /** Lets go of what the runtime holds open (a watch); sessions keep running. */
  close?(): void;
}
