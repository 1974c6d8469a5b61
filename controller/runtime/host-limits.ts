import { execFile } from 'node:child_process';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * inotify limits of the host and of each session.
 *
 * The kernel counts inotify instances and watches per user, and charges a process in a user namespace also to the
 * user who created that namespace, up to the host's. Every session's namespace is created by the engine, that is
 * by the host's root: so every agent's workspace watch, the learner's own watchers (an editor, `nodemon`) and
 * whatever runs in their inner daemons share root's `fs.inotify.max_user_instances` (128 by default) and
 * `max_user_watches`. Two consequences, and a fix for each:
 * - the 129th session's watch fails: the controller raises the host's limits to cover MAX_SESSIONS;
 * - one learner could take them all and break every other session's watch: each session's own namespace gets a
 *   quota (`user.max_inotify_*`, which only a process with CAP_SYS_RESOURCE there could change, none in a session).
 */

/** Per user inside a session (its root runs the agent, the learner the rest): what a busy editor setup needs. */
export const SESSION_INOTIFY_QUOTA = { instances: 64, watches: 32_768 } as const;
/** Users inside a session whose watchers count against the host: the session's root and the learner. */
const USERS_PER_SESSION = 2;
/** Left over for the host's own processes on top of the sessions' share: the kernel's defaults. */
const HOST_SHARE = { instances: 128, watches: 8_192 } as const;

export interface InotifyLimits {
  maxUserInstances: number;
  maxUserWatches: number;
}

/** The host limits MAX_SESSIONS sessions need, never below what the host already allows. */
export function inotifyLimitsFor(maxSessions: number, current: InotifyLimits): InotifyLimits {
  const sessions = maxSessions * USERS_PER_SESSION;
  return {
    maxUserInstances: Math.max(current.maxUserInstances, HOST_SHARE.instances + sessions * SESSION_INOTIFY_QUOTA.instances),
    maxUserWatches: Math.max(current.maxUserWatches, HOST_SHARE.watches + sessions * SESSION_INOTIFY_QUOTA.watches),
  };
}

const SYSCTL = '/proc/sys/fs/inotify';

export async function readInotifyLimits(dir = SYSCTL): Promise<InotifyLimits> {
  const read = async (name: string) => Number.parseInt(await readFile(`${dir}/${name}`, 'utf8'), 10);
  return { maxUserInstances: await read('max_user_instances'), maxUserWatches: await read('max_user_watches') };
}

/**
 * Raises the host's inotify limits to cover `maxSessions` (a host change, like the iptables guard: see
 * docs/operations.md); returns what was there and what is there now. Rejects when /proc/sys is not writable.
 */
export async function raiseHostInotifyLimits(maxSessions: number, dir = SYSCTL): Promise<{ before: InotifyLimits; after: InotifyLimits }> {
  const before = await readInotifyLimits(dir);
  const after = inotifyLimitsFor(maxSessions, before);
  if (after.maxUserInstances !== before.maxUserInstances) await writeFile(`${dir}/max_user_instances`, `${after.maxUserInstances}\n`);
  if (after.maxUserWatches !== before.maxUserWatches) await writeFile(`${dir}/max_user_watches`, `${after.maxUserWatches}\n`);
  return { before, after };
}

/** The commands that set a session's quota, run inside its user namespace (where /proc/sys/user is its own). */
export function sessionQuotaScript(quota: { instances: number; watches: number } = SESSION_INOTIFY_QUOTA): string {
  return `echo ${quota.instances} > /proc/sys/user/max_inotify_instances && echo ${quota.watches} > /proc/sys/user/max_inotify_watches`;
}

/**
 * Gives the session whose init process is `pid` its own inotify quota. The session's user namespace is entered
 * alone (the host's mount namespace and its writable /proc stay), by `nsenter`; a session that shares the host's
 * user namespace (an engine that does not remap) has none of its own to limit, and is left as it is.
 */
export async function capSessionInotify(pid: number): Promise<boolean> {
  const [own, theirs] = await Promise.all([readlink('/proc/self/ns/user'), readlink(`/proc/${pid}/ns/user`)]);
  if (own === theirs) return false;
  await promisify(execFile)('nsenter', [`--user=/proc/${pid}/ns/user`, '--', 'sh', '-c', sessionQuotaScript()], { timeout: 10_000 });
  return true;
}
