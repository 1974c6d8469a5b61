import { execFile } from 'node:child_process';
import { chown, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';

const run = promisify(execFile);

/** Where the agent mounts its own cgroup hierarchies: the session's /sys/fs/cgroup is read-only and cannot be remounted. */
export const LEARNER_CGROUP_ROOT = '/run/agent-cgroups';
// The controllers limited; each is mounted with the controllers its hierarchy has on the host (e.g. "cpu,cpuacct").
const CONTROLLERS = ['pids', 'cpu'] as const;
// Processes the learner can never take from the agent (and from a `docker exec` by the operator).
const PIDS_RESERVE = 64;
// The inode of the initial cgroup namespace (the host's): there the agent must not touch the host's cgroups.
const INITIAL_CGROUP_NS = 'cgroup:[4026531835]';
// The learner gets all of the session's CPU while the agent idles, 1/11 while it works. Equal weights let ~2000
// fork-bomb processes, all runnable at once when killed, keep the agent off the CPU for over a second.
const AGENT_CPU_SHARES = '10240';
const LEARNER_CPU_SHARES = '1024';
// On a remapped engine the session's cgroup folders belong to the host's root until the controller hands them to
// the session's root, right after the container starts.
const HANDOVER_WAIT_MS = 10_000;

/** Both hierarchies' group for the agent and the learner, and the learner's cgroup.procs files. */
export interface LearnerCgroupSetup {
  /** The files a learner process writes its own pid to (owned by the learner, who can join but never leave). */
  procs: string[];
  learnerPidsMax: string;
  /** The learner's pids group, where each exec gets a group of its own (agent/limits/exec-cgroup.ts). */
  execParent: string;
}

export interface LearnerCgroupOptions {
  root?: string;
  pidsReserve?: number;
  /** For tests: where the agent's own cgroup paths and cgroup namespace are read. */
  procSelf?: string;
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

/** The v1 hierarchy of `controller` in /proc/self/cgroup (`2:cpu,cpuacct:/docker/…`), or undefined (cgroup v2). */
export function findHierarchy(procSelfCgroup: string, controller: string): { controllers: string; path: string } | undefined {
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers = '', ...path] = line.split(':');
    if (controllers.split(',').includes(controller)) return { controllers, path: path.join(':') };
  }
  return undefined;
}

/** What to spawn (as the learner) for one learner command. */
export interface LearnerSpawn {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * How to spawn `argv` with `env` so that it joins the learner's cgroup before any learner code runs. A shell
 * started with an empty environment (so nothing like LD_PRELOAD acts before it joined) writes its own pid to
 * each cgroup.procs, exports `env`, then execs the command; a command that cannot start gets the messages and
 * codes of run-process.ts. Without cgroups: `argv` and `env` as they are.
 */
export function learnerSpawn(procs: readonly string[] | undefined, argv: readonly string[], env: Record<string, string>): LearnerSpawn {
  const [file, ...args] = argv;
  if (!procs || procs.length === 0) return { file: file!, args, env };
  const joins = procs.map((procsFile) => `echo "$$" >${quote(procsFile)} || exit 126`).join('\n');
  const script = `${joins}
unset PWD
while [ "$1" != -- ]; do export "$1"; shift; done; shift
command -v -- "$1" >/dev/null || { printf '%s: command not found\\n' "$1" >&2; exit 127; }
case $1 in */*) if [ -d "$1" ] || [ ! -x "$1" ]; then printf '%s: permission denied\\n' "$1" >&2; exit 126; fi;; esac
exec "$@"`;
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  return { file: '/bin/sh', args: ['-c', script, 'learner-cgroup', ...assignments, '--', ...argv], env: {} };
}

function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Gives the learner's processes cgroups of their own below the session's (cgroup v1, private cgroup namespace):
 * `learner` with the session's pids limit less a reserve and a tenth of `agent`'s CPU weight, and moves the agent
 * into `agent`. A fork bomb then runs out of its own pids and CPU share, never the agent's. Where this cannot be
 * done (cgroup v2, the host's cgroup namespace, no CAP_SYS_ADMIN) it logs one warning and returns undefined:
 * the session works, unprotected.
 */
export async function setUpLearnerCgroup(
  learner: { uid: number; gid: number },
  log: FastifyBaseLogger,
  options: LearnerCgroupOptions = {},
): Promise<LearnerCgroupSetup | undefined> {
  const root = options.root ?? LEARNER_CGROUP_ROOT;
  const procSelf = options.procSelf ?? '/proc/self';
  try {
    const cgroups = await readFile(join(procSelf, 'cgroup'), 'utf8');
    const unavailable = await whyUnavailable(procSelf, cgroups);
    if (unavailable) {
      log.warn({ reason: unavailable }, 'learner processes share the agent cgroup: a fork bomb can stall the agent');
      return undefined;
    }
    await mkdir(root, { recursive: true, mode: 0o755 });
    const mounted = await readFile(join(procSelf, 'mountinfo'), 'utf8');
    const procs: string[] = [];
    let pidsMax = 'max';
    for (const controller of CONTROLLERS) {
      const dir = join(root, controller);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      // An agent restarted in the same container finds its mounts there.
      if (!mounted.split('\n').some((line) => line.split(' ')[4] === dir)) {
        await run('mount', ['-t', 'cgroup', '-o', findHierarchy(cgroups, controller)!.controllers, 'cgroup', dir]);
      }
      if (!(await waitUntilOwned(dir, options.handOverWaitMs ?? HANDOVER_WAIT_MS))) {
        throw new Error(`${dir} is not the session root's (on a remapped engine the controller hands it over at the start; did it?)`);
      }
      for (const group of ['agent', 'learner']) await mkdir(join(dir, group), { recursive: true });
      if (controller === 'pids') {
        pidsMax = learnerPidsMax(await readFile(join(dir, 'pids.max'), 'utf8'), options.pidsReserve);
        await writeFile(join(dir, 'learner', 'pids.max'), pidsMax);
      } else {
        await writeFile(join(dir, 'agent', 'cpu.shares'), AGENT_CPU_SHARES);
        await writeFile(join(dir, 'learner', 'cpu.shares'), LEARNER_CPU_SHARES);
      }
      // cgroup.procs moves every thread of the agent (v1); its children from now on start in `agent` too.
      await writeFile(join(dir, 'agent', 'cgroup.procs'), String(process.pid));
      // Only this file is the learner's: its processes may join `learner`, never create groups or move elsewhere.
      const learnerProcs = join(dir, 'learner', 'cgroup.procs');
      await chown(learnerProcs, learner.uid, learner.gid);
      procs.push(learnerProcs);
    }
    log.info({ root, learnerPidsMax: pidsMax }, 'learner processes get their own pids and CPU cgroups');
    return { procs, learnerPidsMax: pidsMax, execParent: join(root, 'pids', 'learner') };
  } catch (error) {
    log.warn({ err: error }, 'cannot set up the learner cgroups: a fork bomb can stall the agent');
    return undefined;
  }
}

/**
 * Waits until `dir` belongs to this process's user, for at most `timeoutMs`; false if it never did. Inside a
 * remapped session the host's root shows as the overflow uid, and only the folder's owner may make groups in it.
 */
export async function waitUntilOwned(dir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await stat(dir)).uid === process.getuid?.()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}

/** Why the agent may not make cgroups here, or undefined when it may. */
async function whyUnavailable(procSelf: string, cgroups: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the agent does not run as root';
  const hierarchies = CONTROLLERS.map((controller) => findHierarchy(cgroups, controller));
  if (hierarchies.includes(undefined)) return 'no cgroup v1 pids and cpu hierarchies (cgroup v2?)';
  // Only at the root of its own cgroup namespace does a fresh mount show the session's cgroup, not the host's.
  if ((await readlink(join(procSelf, 'ns', 'cgroup'))) === INITIAL_CGROUP_NS) return "the host's cgroup namespace (start the session with --cgroupns private)";
  if (hierarchies.some((hierarchy) => hierarchy!.path !== '/')) return 'the agent is not at the root of its cgroup namespace';
  return undefined;
}
