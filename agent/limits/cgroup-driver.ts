import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { signal } from '../exec/process-tree.js';

/** The limits the agent gives the learner's group, and the agent's own share of the CPU against it. */
export interface LearnerLimits {
  /** pids.max of `learner` (`max` for none). */
  pidsMax: string;
  /** The agent's CPU weight is this many times the learner's. */
  agentCpuFactor: number;
}

/**
 * The agent's cgroup work on one kind of host. A group is named by its path below the session's cgroup
 * (`learner/exec-…`); every group belongs to root, so only the agent moves processes between them.
 */
export interface CgroupDriver {
  readonly version: 1 | 2;
  /** Mounts the session's hierarchies under the root (unless mounted) and waits until the agent owns them. */
  mount(mountinfo: string): Promise<void>;
  /** The session's own pids limit, `max` when it has none. */
  readSessionPidsMax(): Promise<string>;
  /** Makes `agent` and `learner` with their limits, then moves the agent (`agentPid`) into `agent`. */
  setUp(limits: LearnerLimits, agentPid: number): Promise<void>;
  makeGroup(group: string): Promise<void>;
  /** The files a process writes its own pid to, as root, to join `group` in every hierarchy. */
  procsFiles(group: string): string[];
  /** Kills every process in `group`, also those that left its process tree. */
  kill(group: string): Promise<void>;
  /** Removes `group`; fails (EBUSY) while a process is in it. */
  removeGroup(group: string): Promise<void>;
  /** The names of the groups directly below `group`. */
  listGroups(group: string): Promise<string[]>;
}

/** cgroup v2 (the unified hierarchy) when the host's cgroup mount has cgroup.controllers at its top, else v1. */
export function detectCgroupVersion(sysFsCgroup = '/sys/fs/cgroup'): 1 | 2 {
  return existsSync(join(sysFsCgroup, 'cgroup.controllers')) ? 2 : 1;
}

/** Whether `dir` is a mount point in /proc/self/mountinfo's text. */
export function isMountPoint(mountinfo: string, dir: string): boolean {
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === dir);
}

// Rounds of reading the members and stopping the new ones before everything is killed; a member can only fork
// between a read and its SIGSTOP, so a few rounds find every process.
const STOP_ROUNDS = 10;

/** Stops every pid `readMembers` lists, round after round until no new one appears, then kills them all. */
export async function stopThenKill(readMembers: () => Promise<number[]>): Promise<void> {
  const stopped = new Set<number>();
  for (let round = 0; round < STOP_ROUNDS; round++) {
    const fresh = (await readMembers()).filter((pid) => !stopped.has(pid));
    if (fresh.length === 0) break;
    for (const pid of fresh) {
      signal(pid, 'SIGSTOP');
      stopped.add(pid);
    }
  }
  for (const pid of new Set([...stopped, ...(await readMembers())])) signal(pid, 'SIGKILL');
}

/** The pids in a cgroup.procs file; none when it is gone. */
export async function readPids(procsFile: string): Promise<number[]> {
  const text = await readFile(procsFile, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/**
 * Waits until `path` belongs to this process's user, for at most `timeoutMs`; false if it never did. Inside a
 * remapped session the host's root shows as the overflow uid, and only the folder's owner may make groups in it.
 */
export async function waitUntilOwned(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await stat(path)).uid === process.getuid?.()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}
