import { readFileSync, statSync, type Stats } from 'node:fs';
import { z } from 'zod';
import { ConfigError, parseEnvironment } from '../core/process/config-error.js';
import { SESSION_PATHS } from '../core/session-layout.js';
import type { LearnerCgroupSetup } from './limits/learner-cgroup.js';

const positiveInt = z.coerce.number().int().positive();
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7070')
  .transform((v) => {
    const at = v.lastIndexOf(':');
    return { host: v.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(v.slice(at + 1)) };
  });

/** Every setting of the agent, read from the environment once at start-up. */
const AgentEnv = z
  .object({
    AGENT_WORKSPACE: z.string().min(1).default(SESSION_PATHS.workspace),
    AGENT_LISTEN: hostPort.optional(),
    AGENT_SOCKET: z.string().min(1).optional(),
    AGENT_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    AGENT_TOKEN_FILE: z.string().min(1).optional(),
    DOCKER_HOST: z.string().min(1).optional(),
    AGENT_LEARNER_UID: z.coerce.number().int().nonnegative().optional(),
    AGENT_LEARNER_GID: z.coerce.number().int().nonnegative().optional(),
    AGENT_LEARNER_HOME: z.string().min(1).optional(),
    AGENT_LEARNER_USER: z.string().min(1).default('learner'),
    AGENT_SUPERVISE_DOCKERD: bool.default(false),
    AGENT_PRELOAD_DIR: z.string().min(1).default(SESSION_PATHS.preloadDir),
    AGENT_LEARNER_EXEC: z.string().min(1).default(SESSION_PATHS.learnerExec),
    AGENT_REGISTRY_MIRROR: z.string().url().optional(),
    AGENT_BODY_LIMIT_BYTES: positiveInt.default(64 * 1024 * 1024),
    AGENT_EXEC_OUTPUT_LIMIT_BYTES: positiveInt.default(1024 * 1024),
    AGENT_EXEC_TIMEOUT_SECONDS: positiveInt.default(300),
    AGENT_TERMINAL_IDLE_SECONDS: positiveInt.default(300),
    AGENT_TERMINAL_SCROLLBACK_BYTES: positiveInt.default(256 * 1024),
    AGENT_MAX_TERMINALS: positiveInt.default(16),
    AGENT_KEEPALIVE_SECONDS: positiveInt.default(20),
    AGENT_ARCHIVE_MAX_BYTES: positiveInt.default(512 * 1024 * 1024),
    AGENT_ARCHIVE_MAX_ENTRIES: positiveInt.default(20_000),
    AGENT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .refine((e) => e.AGENT_LISTEN || e.AGENT_SOCKET, {
    message: 'set AGENT_SOCKET (unix socket path) and/or AGENT_LISTEN (host:port)',
    path: ['AGENT_SOCKET'],
  })
  .refine((e) => !e.AGENT_LISTEN || e.AGENT_TOKEN || e.AGENT_TOKEN_FILE, {
    message: 'required whenever AGENT_LISTEN is set (a TCP listener needs a bearer token)',
    path: ['AGENT_TOKEN'],
  });

export interface AgentConfig {
  workspace: string;
  listen?: { host: string; port: number };
  socket?: string;
  token?: string;
  /** Where the token came from, when a file: the agent reads it again when a request's token does not match. */
  tokenFile?: string;
  dockerHost?: string;
  learner: {
    uid: number;
    gid: number;
    home: string;
    user: string;
    /** The cgroup.procs files the agent's helpers (as-learner workers) join (agent/limits/learner-cgroup.ts). */
    cgroupProcs?: readonly string[];
    /** The learner's cgroups: where each exec gets a group of its own, and what terminals and dockerd join. */
    cgroups?: LearnerCgroupSetup;
  };
  superviseDockerd: boolean;
  preloadDir: string;
  /** learner-exec, the program every exec starts as (agent/exec/learner-exec.ts); missing, execs use setpriv. */
  learnerExec: string;
  registryMirror?: string;
  bodyLimitBytes: number;
  execOutputLimitBytes: number;
  execTimeoutSeconds: number;
  terminalIdleSeconds: number;
  terminalScrollbackBytes: number;
  maxTerminals: number;
  keepaliveSeconds: number;
  /** Most bytes an uploaded archive may unpack to, and most entries it may hold. */
  archiveMaxBytes: number;
  archiveMaxEntries: number;
  logLevel: string;
}

export function parseAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const e = parseEnvironment(AgentEnv, env);
  // A root agent spawns learner processes as uid 1000; an unprivileged one can only use its own ids.
  const isRoot = process.getuid?.() === 0;
  const uid = e.AGENT_LEARNER_UID ?? (isRoot ? 1000 : process.getuid!());
  const gid = e.AGENT_LEARNER_GID ?? (isRoot ? 1000 : process.getgid!());
  return {
    workspace: e.AGENT_WORKSPACE,
    listen: e.AGENT_LISTEN,
    socket: e.AGENT_SOCKET,
    token: e.AGENT_TOKEN ?? (e.AGENT_TOKEN_FILE ? readTokenFile(e.AGENT_TOKEN_FILE) : undefined),
    tokenFile: e.AGENT_TOKEN ? undefined : e.AGENT_TOKEN_FILE,
    // A supervised rootless daemon listens on the learner's runtime directory, where dockerd-rootless.sh puts it.
    dockerHost: e.DOCKER_HOST ?? (e.AGENT_SUPERVISE_DOCKERD ? `unix:///run/user/${uid}/docker.sock` : undefined),
    learner: { uid, gid, home: e.AGENT_LEARNER_HOME ?? e.AGENT_WORKSPACE, user: e.AGENT_LEARNER_USER },
    superviseDockerd: e.AGENT_SUPERVISE_DOCKERD,
    preloadDir: e.AGENT_PRELOAD_DIR,
    learnerExec: e.AGENT_LEARNER_EXEC,
    registryMirror: e.AGENT_REGISTRY_MIRROR,
    bodyLimitBytes: e.AGENT_BODY_LIMIT_BYTES,
    execOutputLimitBytes: e.AGENT_EXEC_OUTPUT_LIMIT_BYTES,
    execTimeoutSeconds: e.AGENT_EXEC_TIMEOUT_SECONDS,
    terminalIdleSeconds: e.AGENT_TERMINAL_IDLE_SECONDS,
    terminalScrollbackBytes: e.AGENT_TERMINAL_SCROLLBACK_BYTES,
    maxTerminals: e.AGENT_MAX_TERMINALS,
    keepaliveSeconds: e.AGENT_KEEPALIVE_SECONDS,
    archiveMaxBytes: e.AGENT_ARCHIVE_MAX_BYTES,
    archiveMaxEntries: e.AGENT_ARCHIVE_MAX_ENTRIES,
    logLevel: e.AGENT_LOG_LEVEL,
  };
}

// A root-only file keeps the token out of every process environment (the session image's choice).
function readTokenFile(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(`invalid configuration: AGENT_TOKEN_FILE: cannot read ${path}: ${(error as Error).message}`);
  }
  if (token.length < 16) throw new ConfigError('invalid configuration: AGENT_TOKEN_FILE: token must be at least 16 characters');
  return token;
}

/**
 * Checks the workspace folder exists and, for a root agent not told who the learner is, makes the learner its
 * owner: on a host the person debugging owns the folder, in the session image the learner (uid 1000) does.
 * A root-owned workspace is refused, since learner processes never run as root unless the environment says so.
 */
export function settleWorkspace(config: AgentConfig, env: NodeJS.ProcessEnv): AgentConfig {
  const where = config.workspace;
  let info: Stats;
  try {
    info = statSync(where);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (error as Error).message;
    throw new ConfigError(`invalid configuration: AGENT_WORKSPACE: ${where}: ${reason}`);
  }
  if (!info.isDirectory()) throw new ConfigError(`invalid configuration: AGENT_WORKSPACE: ${where} is not a folder`);
  if (process.getuid?.() !== 0 || env.AGENT_LEARNER_UID !== undefined) return config;
  if (info.uid === 0) {
    throw new ConfigError(
      `invalid configuration: AGENT_WORKSPACE: ${where} belongs to root and learner processes never run as root: ` +
        `give it to the learner (chown 1000:1000 ${where}) or name one with AGENT_LEARNER_UID`,
    );
  }
  const uid = info.uid;
  const gid = env.AGENT_LEARNER_GID === undefined ? info.gid : config.learner.gid;
  // The supervised daemon's default socket lives in the learner's runtime folder.
  const dockerHost = env.DOCKER_HOST === undefined && config.superviseDockerd ? `unix:///run/user/${uid}/docker.sock` : config.dockerHost;
  return { ...config, dockerHost, learner: { ...config.learner, uid, gid } };
}
