/**
 * Where things are inside a session container: the session image (Dockerfile.session) puts them there, the
 * controller mounts and reads them, and the agent takes them as its defaults.
 */
export const SESSION_PATHS = {
  /** A root-only (0700) host folder is bind-mounted here: it holds the agent's socket and token file. */
  agentDir: '/run/runner',
  /** The agent's unix socket (mode 0600, root) and the root-only file it reads its bearer token from. */
  agentSocket: '/run/runner/agent.sock',
  tokenFile: '/run/runner/token',
  workspace: '/workspace',
  /** The learner's home (uid 1000, who owns the inner rootless daemon). */
  learnerHome: '/home/learner',
  /** The inner daemon's data root: mount a volume here (overlay2 needs it; the image declares none, so none leaks). */
  dockerData: '/home/learner/.local/share/docker',
  /** Image archives loaded into every inner daemon at start. */
  preloadDir: '/opt/runner/preload',
  /** The static program every exec starts as (image/learner-exec/learner-exec.c), staged beside the agent's bundle. */
  learnerExec: '/opt/runner/agent/learner-exec',
} as const;
