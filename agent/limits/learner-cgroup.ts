import { existsSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { detectCgroupVersion, type CgroupDriver } from './cgroup-driver.js';
import { CgroupV1 } from './cgroup-v1.js';
import { CgroupV2 } from './cgroup-v2.js';

export { waitUntilOwned } from './cgroup-driver.js';

/** Where the agent mounts its own cgroup hierarchies: the session's /sys/fs/cgroup is read-only and cannot be remounted. */
export const LEARNER_CGROUP_ROOT = '/run/agent-cgroups';
// The v1 controllers limited; each is mounted with the controllers its hierarchy has on the host (e.g. "cpu,cpuacct").
const V1_CONTROLLERS = ['pids', 'cpu'] as const;
// Processes the learner can never take from the agent (and from a `docker exec` by the operator).
const PIDS_RESERVE = 64;
// The inode of the initial cgroup namespace (the host's): there the agent must not touch the host's cgroups.
const INITIAL_CGROUP_NS = 'cgroup:[4026531835]';
// The learner gets all of the session's CPU while the agent idles, 1/11 while it works. Equal weights let ~2000
// fork-bomb processes, all runnable at once when killed, keep the agent off the CPU for over a second.
const AGENT_CPU_FACTOR = 10;
// On a remapped engine the session's cgroup folders belong to the host's root until the controller hands them to
// the session's root, right after the container starts.
const HANDOVER_WAIT_MS = 10_000;
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

/** The groups below `learner` for learner processes that are not execs (each exec gets one of its own). */
export const LEARNER_GROUPS = { terminals: 'learner/terminals', dockerd: 'learner/dockerd', helpers: 'learner/helpers' } as const;

/** The learner's cgroups: the driver (for the execs' groups) and the cgroup.procs files of each fixed group. */
export interface LearnerCgroupSetup {
  driver: CgroupDriver;
  learnerPidsMax: string;
  /** What terminal shells, the inner dockerd and the agent's helpers (as-learner workers) join. */
  procs: Record<keyof typeof LEARNER_GROUPS, string[]>;
}

export interface LearnerCgroupOptions {
  root?: string;
  pidsReserve?: number;
  /** For tests: where the agent's own cgroup paths and cgroup namespace are read. */
  procSelf?: string;
  /** For tests: the host's cgroup mount, where cgroup v2 shows cgroup.controllers at its top. */
  sysFsCgroup?: string;
  /** How long to wait for a cgroup folder to become the agent's own (see waitUntilOwned). */
  handOverWaitMs?: number;
}

/**
 * The learner's pids limit: the session's, less a reserve for the agent (at most half of the session's).
 * `max` (no limit on the session) stays `max`.
 */
export function learnerPidsMax(sessionPidsMax: string, reserve = PIDS_RESERVE): string {
  const limit = Number(sessionPidsMax.trim());
  if (!Number.isInteger(limit) || limit <= 0) return 'max';
  return String(Math.max(1, limit - Math.min(reserve, Math.floor(limit / 2))));
}

/** The v1 hierarchy of `controller` in /proc/self/cgroup (`2:cpu,cpuacct:/docker/…`), or undefined. */
export function findHierarchy(procSelfCgroup: string, controller: string): { controllers: string; path: string } | undefined {
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers = '', ...path] = line.split(':');
    if (controllers.split(',').includes(controller)) return { controllers, path: path.join(':') };
  }
  return undefined;
}

/** What to spawn, as root or as the learner when the agent is not root, for one learner command. */
export interface LearnerSpawn {
  file: string;
  args: string[];
  env: Record<string, string>;
}

export interface LearnerSpawnOptions {
  uid: number;
  gid: number;
  /** cgroup.procs files the process joins before it becomes the learner (none without learner cgroups). */
  join?: readonly string[];
  /** setpriv's no-new-privileges: no set-uid binary or file capability raises what the command may do. */
  noNewPrivs: boolean;
}

// Run as the learner with an empty environment: exports `env`, then answers a missing or non-executable command as
// run-process.ts reports it, then execs the command.
const LEARNER_SCRIPT = `unset PWD
while [ "$1" != -- ]; do export "$1"; shift; done; shift
command -v -- "$1" >/dev/null || { printf '%s: command not found\\n' "$1" >&2; exit 127; }
case $1 in */*) if [ -d "$1" ] || [ ! -x "$1" ]; then printf '%s: permission denied\\n' "$1" >&2; exit 126; fi;; esac
exec "$@"`;

/** setpriv's path, or undefined where util-linux lacks it. */
export function findSetpriv(): string | undefined {
  return SETPRIV_PATHS.find((path) => existsSync(path));
}

/**
 * How to spawn `argv` with `env` as the learner, joined to its cgroup before any learner code runs. Spawned as
 * root, a shell with an empty environment writes its own pid to each cgroup.procs (root's files: a learner
 * process can never move itself), then execs setpriv, which becomes the learner (no supplementary groups) and
 * runs a shell that exports `env` and execs the command. A command that cannot start gets the messages and codes
 * of run-process.ts. An agent that is not root runs the command as itself.
 */
export function learnerSpawn(options: LearnerSpawnOptions, argv: readonly string[], env: Record<string, string>): LearnerSpawn {
  const learner = [...becomeLearner(options), ...learnerArguments(argv, env)];
  const joins = joinCommands(options.join);
  if (!joins) return { file: learner[0]!, args: learner.slice(1), env: {} };
  return { file: '/bin/sh', args: ['-c', `${joins}\nexec "$@"`, 'learner-cgroup', ...learner], env: {} };
}

/** The start of every learner command line: setpriv, then the shell that takes `learnerArguments` and runs them. */
function becomeLearner(options: Omit<LearnerSpawnOptions, 'join'>): string[] {
  const setpriv = findSetpriv();
  if (!setpriv) throw new Error('learner processes need setpriv (util-linux) to drop privileges');
  const switchUser = options.uid !== process.getuid?.() || options.gid !== process.getgid?.();
  const drop = switchUser ? ['--reuid', String(options.uid), '--regid', String(options.gid), '--clear-groups'] : [];
  const privs = options.noNewPrivs ? ['--no-new-privs'] : [];
  return [setpriv, ...drop, ...privs, '--', '/bin/sh', '-c', LEARNER_SCRIPT, 'learner'];
}

/** What follows `becomeLearner`: the variables to export, then the command. */
function learnerArguments(argv: readonly string[], env: Record<string, string>): string[] {
  return [...Object.entries(env).map(([name, value]) => `${name}=${value}`), '--', ...argv];
}

/** Shell lines, run as root, that write the shell's own pid to each cgroup.procs or exit 126; '' for none. */
function joinCommands(procsFiles: readonly string[] = []): string {
  return procsFiles.map((procsFile) => `echo "$$" >${quote(procsFile)} || exit 126`).join('\n');
}

/** `text` as one shell word. */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Gives the learner's processes cgroups of their own below the session's (cgroup v1 or v2, private cgroup
 * namespace): `learner` with the session's pids limit less a reserve and a tenth of `agent`'s CPU weight, and moves
 * the agent into `agent`. Learner processes live in groups below `learner`: one per exec, `terminals`, `dockerd`,
 * `helpers`. Every group is root's, so a learner process stays where the agent put it. A fork bomb then runs out of
 * its own pids and CPU share, never the agent's. Where this cannot be done (the host's cgroup namespace, no
 * CAP_SYS_ADMIN) it logs one warning and returns undefined: the session works, unprotected.
 */
export async function setUpLearnerCgroup(log: FastifyBaseLogger, options: LearnerCgroupOptions = {}): Promise<LearnerCgroupSetup | undefined> {
  const root = options.root ?? LEARNER_CGROUP_ROOT;
  const procSelf = options.procSelf ?? '/proc/self';
  const handOverWaitMs = options.handOverWaitMs ?? HANDOVER_WAIT_MS;
  try {
    const cgroups = await readFile(join(procSelf, 'cgroup'), 'utf8');
    const version = detectCgroupVersion(options.sysFsCgroup);
    const unavailable = await whyUnavailable(procSelf, cgroups, version);
    if (unavailable) {
      log.warn({ reason: unavailable }, 'learner processes share the agent cgroup: a fork bomb can stall the agent');
      return undefined;
    }
    const driver =
      version === 2
        ? new CgroupV2(root, handOverWaitMs)
        : new CgroupV1(root, V1_CONTROLLERS.map((name) => ({ name, controllers: findHierarchy(cgroups, name)!.controllers })), handOverWaitMs);
    await driver.mount(await readFile(join(procSelf, 'mountinfo'), 'utf8'));
    const pidsMax = learnerPidsMax(await driver.readSessionPidsMax(), options.pidsReserve);
    await driver.setUp({ pidsMax, agentCpuFactor: AGENT_CPU_FACTOR }, process.pid);
    for (const group of Object.values(LEARNER_GROUPS)) await driver.makeGroup(group);
    const procs = {
      terminals: driver.procsFiles(LEARNER_GROUPS.terminals),
      dockerd: driver.procsFiles(LEARNER_GROUPS.dockerd),
      helpers: driver.procsFiles(LEARNER_GROUPS.helpers),
    };
    log.info({ root, cgroupVersion: version, learnerPidsMax: pidsMax }, 'learner processes get their own pids and CPU cgroups');
    return { driver, learnerPidsMax: pidsMax, procs };
  } catch (error) {
    log.warn({ err: error }, 'cannot set up the learner cgroups: a fork bomb can stall the agent');
    return undefined;
  }
}

/** Why the agent may not make cgroups here, or undefined when it may. */
async function whyUnavailable(procSelf: string, cgroups: string, version: 1 | 2): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the agent does not run as root';
  // The v2 line is `0::/path`; v1 has one line per hierarchy.
  const paths = version === 2 ? [findUnifiedPath(cgroups)] : V1_CONTROLLERS.map((controller) => findHierarchy(cgroups, controller)?.path);
  if (paths.includes(undefined)) return version === 2 ? 'no cgroup v2 line in /proc/self/cgroup' : 'no cgroup v1 pids and cpu hierarchies';
  // Only at the root of its own cgroup namespace does a fresh mount show the session's cgroup, not the host's.
  if ((await readlink(join(procSelf, 'ns', 'cgroup'))) === INITIAL_CGROUP_NS) return "the host's cgroup namespace (start the session with --cgroupns private)";
  if (paths.some((path) => path !== '/')) return 'the agent is not at the root of its cgroup namespace';
  return undefined;
}

function findUnifiedPath(procSelfCgroup: string): string | undefined {
  const line = procSelfCgroup.split('\n').find((entry) => entry.startsWith('0::'));
  return line?.slice('0::'.length);
}
