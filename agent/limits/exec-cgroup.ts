import { randomBytes } from 'node:crypto';
import { chown, mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { signal } from '../exec/process-tree.js';

const GROUP_PREFIX = 'exec-';
// Rounds of reading the members and stopping the new ones before everything is killed; a member can only fork
// between a read and its SIGSTOP, so a few rounds find every process.
const STOP_ROUNDS = 10;
// Groups of execs still running here: empty until their first process joins, and not to be swept meanwhile.
const inUse = new Set<string>();

/**
 * A pids cgroup of its own for one exec, below the learner's (agent/limits/learner-cgroup.ts). Processes stay in
 * the cgroup they were born in whatever they do to their process group or parent, so a timeout finds and kills
 * every process the command started, also a daemon that forked twice and was re-parented to init, which no walk of
 * the process tree can find. What is still running when the command returns (a server started in the background)
 * keeps running, as before; its group is removed once it is empty.
 */
export class ExecCgroup {
  private constructor(readonly dir: string) {}

  /** Makes a group below `parent` that the learner may join; empty groups of earlier execs are removed first. */
  static async create(parent: string, owner: { uid: number; gid: number }): Promise<ExecCgroup> {
    await removeEmptyGroups(parent);
    const dir = join(parent, `${GROUP_PREFIX}${randomBytes(6).toString('hex')}`);
    // Marked before it exists: another exec's sweep may list it as soon as mkdir made it.
    inUse.add(dir);
    try {
      await mkdir(dir);
      // Joining needs write access to the file; making groups (and so leaving them for a new one) stays the agent's.
      await chown(join(dir, 'cgroup.procs'), owner.uid, owner.gid);
    } catch (error) {
      inUse.delete(dir);
      await rmdir(dir).catch(() => {});
      throw error;
    }
    return new ExecCgroup(dir);
  }

  /** The file the command's first process writes its pid to (before any learner code runs). */
  get procs(): string {
    return join(this.dir, 'cgroup.procs');
  }

  /** Stops every member, round after round until no new one appears, then kills them all: none can fork meanwhile. */
  async kill(): Promise<void> {
    const stopped = new Set<number>();
    for (let round = 0; round < STOP_ROUNDS; round++) {
      const fresh = (await this.#members()).filter((pid) => !stopped.has(pid));
      if (fresh.length === 0) break;
      for (const pid of fresh) {
        signal(pid, 'SIGSTOP');
        stopped.add(pid);
      }
    }
    for (const pid of new Set([...stopped, ...(await this.#members())])) signal(pid, 'SIGKILL');
  }

  /** Removes the group when nothing runs in it any more; otherwise a later exec does (see `create`). */
  async release(): Promise<void> {
    inUse.delete(this.dir);
    await rmdir(this.dir).catch(() => {});
  }

  async #members(): Promise<number[]> {
    const text = await readFile(this.procs, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }
}

/** rmdir only succeeds on a cgroup without processes (EBUSY otherwise), so trying each one is the check. */
async function removeEmptyGroups(parent: string): Promise<void> {
  const names = await readdir(parent).catch(() => []);
  const idle = names.filter((name) => name.startsWith(GROUP_PREFIX)).map((name) => join(parent, name)).filter((dir) => !inUse.has(dir));
  await Promise.all(idle.map((dir) => rmdir(dir).catch(() => {})));
}
