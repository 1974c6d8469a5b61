import { constants } from 'node:fs';
import { lchown, open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SESSION_PATHS } from '../../core/session-layout.js';

/** The host ids a user-namespace-remapped engine (`dockerd --userns-remap`) gives every container's root. */
export interface RemappedRoot {
  uid: number;
  gid: number;
}

/** The parts of `docker info` that tell a remapped engine. */
export interface EngineInfo {
  SecurityOptions?: string[];
  DockerRootDir?: string;
}

/** One line of /etc/subuid or /etc/subgid: `user:start:count`. */
export interface SubordinateRange {
  user: string;
  start: number;
  count: number;
}

/**
 * How many ids a session needs the engine to map: the learner's own sub-ids inside the session (the image's
 * /etc/subuid, 100000 + 65536) end at 165535, and the inner daemon fails in newuidmap on any it cannot map.
 */
export const SESSION_REMAP_IDS = 165_536;

// The hierarchies the agent mounts for the learner's cgroups (agent/limits/learner-cgroup.ts).
const AGENT_CGROUP_CONTROLLERS = ['pids', 'cpu'] as const;
const TOKEN_NAME = basename(SESSION_PATHS.tokenFile);

/**
 * The remapped root of an engine, or null when the engine does not remap. A remapped engine names its data root
 * after that root (`/var/lib/docker/100000.100000`): the only place it says which ids it maps to.
 */
export function findRemappedRoot(info: EngineInfo): RemappedRoot | null {
  const remapped = (info.SecurityOptions ?? []).some((option) => option.split(',').includes('name=userns'));
  if (!remapped) return null;
  const suffix = /\/(\d+)\.(\d+)\/?$/.exec(info.DockerRootDir ?? '');
  if (!suffix) throw new Error(`the engine remaps user namespaces but its data root ${info.DockerRootDir ?? '(none)'} does not name the remapped root as uid.gid`);
  return { uid: Number(suffix[1]), gid: Number(suffix[2]) };
}

/** The ranges of an /etc/subuid or /etc/subgid file; comments and malformed lines are left out. */
export function parseSubordinateIds(text: string): SubordinateRange[] {
  const ranges: SubordinateRange[] = [];
  for (const line of text.split('\n')) {
    const match = /^([^:#\s][^:]*):(\d+):(\d+)$/.exec(line.trim());
    if (match) ranges.push({ user: match[1]!, start: Number(match[2]), count: Number(match[3]) });
  }
  return ranges;
}

/**
 * How many ids the engine maps from `start` on: the engine maps its remap user's ranges one after another, the
 * first starting at the remapped root. Undefined when no user's first range starts there.
 */
export function remappedIdCount(ranges: SubordinateRange[], start: number): number | undefined {
  const firsts = new Map<string, SubordinateRange>();
  for (const range of ranges) if (!firsts.has(range.user)) firsts.set(range.user, range);
  const owner = [...firsts.values()].find((range) => range.start === start)?.user;
  if (owner === undefined) return undefined;
  return ranges.filter((range) => range.user === owner).reduce((sum, range) => sum + range.count, 0);
}

/**
 * What on this host keeps a remapped engine's sessions from working: too few ids in /etc/subuid or /etc/subgid
 * for a session's inner daemon, a root-only /dev/net/tun. Files it cannot read are not judged (a controller in a
 * container sees its own /etc, not the engine's).
 */
export async function checkRemappedHost(root: RemappedRoot, etc = '/etc', tunDevice = '/dev/net/tun'): Promise<string[]> {
  const problems: string[] = [];
  for (const [file, start] of [['subuid', root.uid], ['subgid', root.gid]] as const) {
    const text = await readFile(join(etc, file), 'utf8').catch(() => undefined);
    const count = text === undefined ? undefined : remappedIdCount(parseSubordinateIds(text), start);
    if (count !== undefined && count < SESSION_REMAP_IDS) {
      problems.push(`${join(etc, file)} maps ${count} ids from ${start}: a session's inner daemon needs ${SESSION_REMAP_IDS}`);
    }
  }
  // The session gets the host's node itself (a remapped container cannot make device nodes): root-only closes it.
  const tun = await stat(tunDevice).catch(() => undefined);
  if (tun && (tun.mode & 0o666) !== 0o666) {
    problems.push(`${tunDevice} has mode ${(tun.mode & 0o777).toString(8)}: a session's inner daemon needs 666 for its network`);
  }
  return problems;
}

/**
 * Gives the session's root the agent's host folder and its token file, which the controller made as the host's
 * root. The token is opened without following links and changed through its descriptor: the folder is the
 * session's to write, so a name in it may have been swapped for a link to a host file.
 */
export async function handOverAgentDir(dir: string, root: RemappedRoot): Promise<void> {
  await lchown(dir, root.uid, root.gid);
  const token = await open(join(dir, TOKEN_NAME), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await token.stat()).isFile()) throw new Error(`${join(dir, TOKEN_NAME)} is not a regular file`);
    await token.chown(root.uid, root.gid);
  } finally {
    await token.close();
  }
}

/** The folders of a process's cgroup v1 hierarchies `controllers`, from its /proc/<pid>/cgroup. */
export function cgroupFolders(procCgroup: string, cgroupRoot: string, controllers: readonly string[] = AGENT_CGROUP_CONTROLLERS): string[] {
  const folders: string[] = [];
  for (const controller of controllers) {
    for (const line of procCgroup.split('\n')) {
      const [, names = '', ...path] = line.split(':');
      if (names.split(',').includes(controller)) folders.push(join(cgroupRoot, names, path.join(':')));
    }
  }
  return folders;
}

/**
 * Gives the session's root the cgroup folders of the session's pids and cpu hierarchies, so that the agent can
 * make the learner's groups in them (it waits for this). Docker makes them anew at every start of the container.
 * Each must name the container: a pid that ended and was reused by a host process never hands over the host's.
 * Cgroup v2 (no such hierarchies): nothing to do.
 */
export async function handOverCgroups(
  container: { id: string; pid: number },
  root: RemappedRoot,
  procRoot = '/proc',
  cgroupRoot = '/sys/fs/cgroup',
): Promise<string[]> {
  const folders = cgroupFolders(await readFile(join(procRoot, String(container.pid), 'cgroup'), 'utf8'), cgroupRoot);
  const foreign = folders.find((folder) => !folder.includes(container.id));
  if (foreign) throw new Error(`process ${container.pid} is not in container ${container.id}'s cgroups (${foreign})`);
  for (const folder of folders) await lchown(folder, root.uid, root.gid);
  return folders;
}
