import { randomBytes } from 'node:crypto';
import type { CgroupDriver } from './cgroup-driver.js';

const PARENT = 'learner';
const GROUP_PREFIX = 'exec-';
// Groups of execs still running here: empty until their first process joins, and not to be swept meanwhile.
const inUse = new Set<string>();

/**
 * A cgroup of its own for one exec, below the learner's (agent/limits/learner-cgroup.ts). Processes stay in the
 * cgroup they were born in whatever they do to their process group or parent, and the group is root's, so none can
 * move out: a timeout finds and kills every process the command started, also a daemon that forked twice and was
 * re-parented to init, which no walk of the process tree can find. What is still running when the command returns
 * (a server started in the background) keeps running, as before; its group is removed once it is empty.
 */
export class ExecCgroup {
  private constructor(
    private readonly driver: CgroupDriver,
    readonly group: string,
  ) {}

  /** Makes a group for one exec; empty groups of earlier execs are removed first. */
  static async create(driver: CgroupDriver): Promise<ExecCgroup> {
    await removeEmptyGroups(driver);
    const group = `${PARENT}/${GROUP_PREFIX}${randomBytes(6).toString('hex')}`;
    // Marked before it exists: another exec's sweep may list it as soon as it was made.
    inUse.add(group);
    try {
      await driver.makeGroup(group);
    } catch (error) {
      inUse.delete(group);
      await driver.removeGroup(group).catch(() => {});
      throw error;
    }
    return new ExecCgroup(driver, group);
  }

  /** The files the command's first process writes its pid to, as root, before any learner code runs. */
  get procs(): string[] {
    return this.driver.procsFiles(this.group);
  }

  /** Kills every member; none can fork away meanwhile (see the driver's kill). */
  async kill(): Promise<void> {
    await this.driver.kill(this.group);
  }

  /** Removes the group when nothing runs in it any more; otherwise a later exec does (see `create`). */
  async release(): Promise<void> {
    inUse.delete(this.group);
    await this.driver.removeGroup(this.group).catch(() => {});
  }
}

/** Removing only succeeds on a cgroup without processes (EBUSY otherwise), so trying each one is the check. */
async function removeEmptyGroups(driver: CgroupDriver): Promise<void> {
  const names = await driver.listGroups(PARENT);
  const idle = names.filter((name) => name.startsWith(GROUP_PREFIX)).map((name) => `${PARENT}/${name}`).filter((group) => !inUse.has(group));
  await Promise.all(idle.map((group) => driver.removeGroup(group).catch(() => {})));
}
