import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { parseEnvironment } from '../core/process/config-error.js';
import { SESSION_IMAGE } from './runtime/session-security.js';

const positiveInt = z.coerce.number().int().positive();
const LOOPBACK = '127.0.0.1';

// Docker's own memory notation: a number with an optional b/k/m/g suffix (`1536m`), in bytes.
const UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
/** A size in bytes, written as digits with an optional b, k, m or g. */
const size = (examples: string) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?[bkmg]?$/i, `expected a size such as ${examples}`)
    .transform((v) => Math.floor(Number.parseFloat(v) * (UNITS[v.slice(-1).toLowerCase()] ?? 1)));
const memory = size('1536m or 2g').refine((bytes) => bytes >= 6 * 1024 ** 2, 'must be at least 6m (Docker refuses less)');

// A session's own filesystem: 0 turns it off, else at least what ext4 and an idle inner daemon need.
const diskSize = size('10g or 512m, or 0').refine((bytes) => bytes === 0 || bytes >= 64 * 1024 ** 2, 'must be 0 (no limit) or at least 64m');

// A unix socket path holds at most 107 bytes; the longest is SOCKETS_DIR/<48-char id>/agent/agent.sock.
const SOCKET_PATH_TAIL = 1 + 48 + '/agent/agent.sock'.length;
const MAX_SOCKETS_DIR_LENGTH = 107 - SOCKET_PATH_TAIL;

/** Every setting of the controller, read from the environment once at start-up. */
const ControllerEnv = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
    HOST: z.string().min(1).optional(),
    RUNNER_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    SESSION_TTL_SECONDS: positiveInt.default(1800),
    MAX_TTL_SECONDS: positiveInt.default(4 * 3600),
    // A class of 30 starting at once fits, with room for a warm pool; an idle session holds about 60 MiB.
    MAX_SESSIONS: positiveInt.default(50),
    WARM_POOL_SIZE: z.coerce.number().int().nonnegative().default(0),
    CLEANUP_INTERVAL_SECONDS: positiveInt.default(300),
    USAGE_TTL_SECONDS: positiveInt.default(5),
    // A walk reads every file's metadata in the two volumes: rare, one at a time, only for sessions someone asks about.
    USAGE_DISK_WALK_SECONDS: positiveInt.default(60),
    SESSION_START_TIMEOUT_SECONDS: positiveInt.default(60),
    // A start costs seconds of CPU (agent, inner daemon): more at once only makes every one of them slower.
    MAX_CONCURRENT_STARTS: positiveInt.max(64).default(3),
    CONTAINER_MEMORY_LIMIT: memory.default(1536 * 1024 ** 2),
    CONTAINER_CPU_LIMIT: z.coerce.number().positive().max(1024).default(1),
    CONTAINER_PIDS_LIMIT: positiveInt.default(2048),
    SESSION_IMAGE: z.string().min(1).default(SESSION_IMAGE),
    SOCKETS_DIR: z
      .string()
      .refine(isAbsolute, 'must be an absolute path')
      .refine((p) => p.length <= MAX_SOCKETS_DIR_LENGTH, `must be at most ${MAX_SOCKETS_DIR_LENGTH} characters (unix socket paths are short)`)
      .default('/var/lib/runner/sessions'),
    SESSION_NETWORK: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'not a valid Docker network name').default('runner-sessions'),
    SESSION_NAME_PREFIX: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,15}$/, 'lowercase letters, digits, _ . -, at most 16').default('sess-'),
    RUNNER_INSTANCE: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, _ . -').default('default'),
    SESSION_REGISTRY_MIRROR: z.url().optional(),
    SESSION_HOST_GUARD: z.enum(['true', 'false']).default('true'),
    SESSION_DISK_LIMIT: diskSize.default(10 * 1024 ** 3),
    SESSION_DISK_DIR: z.string().refine(isAbsolute, 'must be an absolute path').default('/var/lib/runner/disks'),
    // Unset: SESSION_DISK_LIMIT, room for one more session's disk filled to its limit.
    SESSION_DISK_MIN_FREE: size('10g or 512m, or 0').optional(),
    DOCKER_HOST: z.string().min(1).optional(),
    PUBLIC_API_DOCS: z.enum(['true', 'false']).default('false'),
    SESSION_RUNTIME: z.enum(['docker', 'kubernetes']).default('docker'),
    SESSION_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'not a valid Kubernetes namespace').max(63).default('runner-sessions'),
    AGENT_PORT: z.coerce.number().int().min(1).max(65_535).default(7070),
    SESSION_SECCOMP_PROFILE: z
      .string()
      .regex(/^[A-Za-z0-9_-][A-Za-z0-9._/-]*$/, 'a relative path below the kubelet\'s seccomp folder')
      .refine((p) => !p.split('/').includes('..'), 'must stay below the kubelet\'s seccomp folder')
      .default('runner/seccomp.json'),
    LEADER_LEASE_NAME: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'not a valid Kubernetes name').default('runner-controller'),
    LEADER_LEASE_SECONDS: positiveInt.default(15),
    // Set by Kubernetes to the pod's name: who holds the leader lease.
    HOSTNAME: z.string().min(1).default('runner-controller'),
    TEMPLATES_DIR: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    KEPT_WORKSPACE_TTL_SECONDS: positiveInt.default(24 * 3600),
    CONTAINRLAB_COMPAT: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    LABS_ROOT: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    // Browser grants: the key that signs them, where browsers reach the controller, origins allowed to open terminals.
    RUNNER_SIGNING_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
    RUNNER_PUBLIC_URL: z.url().optional(),
    RUNNER_ALLOWED_ORIGINS: z.string().default(''),
    PREVIEW_DOMAIN: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, 'a lowercase DNS name such as preview.example.com')
      .optional(),
    PREVIEW_PUBLIC_PORT: z.coerce.number().int().min(1).max(65_535).optional(),
    PREVIEW_HTTPS: z.enum(['true', 'false']).default('true'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .refine((e) => e.SESSION_TTL_SECONDS <= e.MAX_TTL_SECONDS, {
    message: 'must not exceed MAX_TTL_SECONDS',
    path: ['SESSION_TTL_SECONDS'],
  })
  // Pool members are containers on the host too: never more of them than sessions may run.
  .refine((e) => e.WARM_POOL_SIZE <= e.MAX_SESSIONS, {
    message: 'must not exceed MAX_SESSIONS',
    path: ['WARM_POOL_SIZE'],
  })
  .refine((e) => e.RUNNER_API_TOKEN || !e.HOST || isLoopback(e.HOST), {
    message: 'required when HOST is not a loopback address (the API would be open to the network)',
    path: ['RUNNER_API_TOKEN'],
  });

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface ControllerConfig {
  port: number;
  host: string;
  /** Bearer token for every route but /health; none means loopback only. */
  apiToken?: string;
  sessionTtlSeconds: number;
  maxTtlSeconds: number;
  maxSessions: number;
  /** Sessions started ahead, unassigned, for POST /sessions to claim; 0 turns the warm pool off. */
  warmPoolSize: number;
  cleanupIntervalSeconds: number;
  /** How long a session's usage figures are served from cache before its cgroup is read again. */
  usageTtlSeconds: number;
  /** How old a walk of a session's volumes (no session filesystem) may get before another one starts. */
  usageDiskWalkSeconds: number;
  /** How long one start may take, counted from when it begins (not from when its create was queued). */
  sessionStartTimeoutSeconds: number;
  /** Session starts (cold creates and warm pool top-ups) that run at once; the others wait their turn. */
  maxConcurrentStarts: number;
  memoryBytes: number;
  cpus: number;
  pidsLimit: number;
  sessionImage: string;
  socketsDir: string;
  network: string;
  namePrefix: string;
  instance: string;
  registryMirror?: string;
  /** Installs iptables rules that refuse every packet from the sessions bridge to the host itself (DNS excepted). */
  hostGuard: boolean;
  /** The size of each session's own filesystem (workspace and inner daemon's data together); 0 turns it off. */
  diskLimitBytes: number;
  /** Where the controller keeps the sessions' filesystem images and their mount points. */
  diskDir: string;
  /**
   * A new session filesystem is made only while the host filesystem under diskDir has this much free: the images are
   * sparse, so together they may promise more than the host holds, and a full host breaks every session's writes.
   */
  diskMinFreeBytes: number;
  dockerHost?: string;
  /** Which engine runs sessions: the host's Docker, or pods in a Kubernetes cluster. */
  runtime: 'docker' | 'kubernetes';
  kubernetes: KubernetesConfig;
  /** Host folder whose sub-folders seed new workspaces (`"workspace": {"template": name}`); none: no templates. */
  templatesDir?: string;
  /** How long `DELETE /sessions/{id}?keep_workspace=true` keeps the workspace for a session of that id. */
  keptWorkspaceTtlSeconds: number;
  /** Serve ContainrLab's flat API at the root (controller/containrlab/). */
  containrlabCompat: boolean;
  /** Where ContainrLab's `/start` finds `<lab_slug>/starter`; TEMPLATES_DIR by default. */
  labsRoot?: string;
  logLevel: string;
  /** /openapi.json and /docs are served without the token, like /health. */
  publicApiDocs: boolean;
  /** Key of the grants' HMAC; none: one generated once and kept in SOCKETS_DIR. */
  signingKey?: string;
  /** Where browsers reach the controller (terminal and file links); none: the grant request's own scheme and host. */
  publicUrl?: string;
  /** Exact origins whose pages may open a terminal with a ticket. */
  allowedOrigins: string[];
  /** Every published port of every session is served at `{port}-{session}.{previewDomain}`; none: no previews. */
  previewDomain?: string;
  /** The port in preview URLs (none: the scheme's default). */
  previewPublicPort?: number;
  /** Preview URLs are https and their cookie `Secure; SameSite=None; Partitioned`; false for plain-http local use. */
  previewHttps: boolean;
}

/** Settings the Kubernetes runtime reads (SESSION_RUNTIME=kubernetes); the cluster itself comes from KUBECONFIG or the pod. */
export interface KubernetesConfig {
  namespace: string;
  /** The TCP port each session's agent listens on (with its token) for the controller. */
  agentPort: number;
  /** The seccomp profile's path below the kubelet's seccomp folder (the DaemonSet in deploy/kubernetes writes it). */
  seccompProfile: string;
  /** The coordination.k8s.io Lease whose holder runs the expiry sweep and the warm pool. */
  leaseName: string;
  leaseSeconds: number;
  /** This replica's name in the Lease. */
  replicaId: string;
}

export function parseControllerConfig(env: NodeJS.ProcessEnv): ControllerConfig {
  const e = parseEnvironment(ControllerEnv, env);
  return {
    port: e.PORT,
    host: e.HOST ?? (e.RUNNER_API_TOKEN ? '0.0.0.0' : LOOPBACK),
    apiToken: e.RUNNER_API_TOKEN,
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    maxTtlSeconds: e.MAX_TTL_SECONDS,
    maxSessions: e.MAX_SESSIONS,
    warmPoolSize: e.WARM_POOL_SIZE,
    cleanupIntervalSeconds: e.CLEANUP_INTERVAL_SECONDS,
    usageTtlSeconds: e.USAGE_TTL_SECONDS,
    usageDiskWalkSeconds: e.USAGE_DISK_WALK_SECONDS,
    sessionStartTimeoutSeconds: e.SESSION_START_TIMEOUT_SECONDS,
    maxConcurrentStarts: e.MAX_CONCURRENT_STARTS,
    memoryBytes: e.CONTAINER_MEMORY_LIMIT,
    cpus: e.CONTAINER_CPU_LIMIT,
    pidsLimit: e.CONTAINER_PIDS_LIMIT,
    sessionImage: e.SESSION_IMAGE,
    socketsDir: e.SOCKETS_DIR,
    network: e.SESSION_NETWORK,
    namePrefix: e.SESSION_NAME_PREFIX,
    instance: e.RUNNER_INSTANCE,
    registryMirror: e.SESSION_REGISTRY_MIRROR,
    hostGuard: e.SESSION_HOST_GUARD === 'true',
    diskLimitBytes: e.SESSION_DISK_LIMIT,
    diskDir: e.SESSION_DISK_DIR,
    diskMinFreeBytes: e.SESSION_DISK_MIN_FREE ?? e.SESSION_DISK_LIMIT,
    dockerHost: e.DOCKER_HOST,
    runtime: e.SESSION_RUNTIME,
    kubernetes: {
      namespace: e.SESSION_NAMESPACE,
      agentPort: e.AGENT_PORT,
      seccompProfile: e.SESSION_SECCOMP_PROFILE,
      leaseName: e.LEADER_LEASE_NAME,
      leaseSeconds: e.LEADER_LEASE_SECONDS,
      replicaId: e.HOSTNAME,
    },
    templatesDir: e.TEMPLATES_DIR,
    keptWorkspaceTtlSeconds: e.KEPT_WORKSPACE_TTL_SECONDS,
    containrlabCompat: e.CONTAINRLAB_COMPAT,
    labsRoot: e.LABS_ROOT ?? e.TEMPLATES_DIR,
    logLevel: e.LOG_LEVEL,
    publicApiDocs: e.PUBLIC_API_DOCS === 'true',
    signingKey: e.RUNNER_SIGNING_KEY,
    publicUrl: e.RUNNER_PUBLIC_URL?.replace(/\/+$/, ''),
    allowedOrigins: e.RUNNER_ALLOWED_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
    previewDomain: e.PREVIEW_DOMAIN,
    previewPublicPort: e.PREVIEW_PUBLIC_PORT,
    previewHttps: e.PREVIEW_HTTPS === 'true',
  };
}
