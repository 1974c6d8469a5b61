import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isMountPoint, readPids, stopThenKill, waitUntilOwned, type CgroupDriver, type LearnerLimits } from './cgroup-driver.js';

const run = promisify(execFile);
// cpu.weight of a group nobody set (1 to 10000): the learner's, against which the agent's is multiplied.
const DEFAULT_CPU_WEIGHT = 100;
const MAX_CPU_WEIGHT = 10_000;
// The controllers the agent turns on for `agent` and `learner`, where the session's cgroup has them.
const CONTROLLERS = ['pids', 'cpu'] as const;

/**
 * cgroup v2: one unified hierarchy, the session's cgroup mounted at `root`. The kernel's rules the layout follows:
 * - a group with controllers on for its children (cgroup.subtree_control) holds no processes itself, so the root's
 *   processes (tini, the agent) move to `agent` before `pids` and `cpu` are turned on there; learner processes
 *   only ever live in leaf groups below `learner`;
 * - moving a process needs write access to the target's cgroup.procs and to that of the common ancestor of where
 *   it is and where it goes: the root's for every move the agent makes, so the agent must own the root's
 *   cgroup.procs, and a learner, owning none, can move nowhere.
 */
export class CgroupV2 implements CgroupDriver {
  readonly version = 2;

  constructor(
    readonly root: string,
    private readonly handOverWaitMs: number,
  ) {}

  async mount(mountinfo: string): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o755 });
    // An agent restarted in the same container finds its mount there.
    if (!isMountPoint(mountinfo, this.root)) await run('mount', ['-t', 'cgroup2', 'cgroup2', this.root]);
    // The folder (to make groups), and the files of the common ancestor of every move the agent makes.
    for (const path of [this.root, join(this.root, 'cgroup.procs'), join(this.root, 'cgroup.subtree_control')]) {
      if (!(await waitUntilOwned(path, this.handOverWaitMs))) throw new Error(`${path} is not the session root's (was the session's cgroup delegated?)`);
    }
  }

  async readSessionPidsMax(): Promise<string> {
    // The namespace's root shows pids.max only where the pids controller is on for the session.
    return readFile(join(this.root, 'pids.max'), 'utf8').catch(() => 'max');
  }

  async setUp(limits: LearnerLimits, agentPid: number): Promise<void> {
    for (const group of ['agent', 'learner']) await this.makeGroup(group);
    // Every process of the root (tini and the agent; the agent's threads move with it) leaves it first.
    for (const pid of await readPids(join(this.root, 'cgroup.procs'))) await this.#move(pid, 'agent');
    await this.#move(agentPid, 'agent');
    const available = (await readFile(join(this.root, 'cgroup.controllers'), 'utf8')).split(/\s+/);
    const enabled = CONTROLLERS.filter((controller) => available.includes(controller));
    if (enabled.length > 0) await writeFile(join(this.root, 'cgroup.subtree_control'), enabled.map((c) => `+${c}`).join(' '));
    if (enabled.includes('pids')) await writeFile(join(this.root, 'learner', 'pids.max'), limits.pidsMax);
    if (enabled.includes('cpu')) {
      const agentWeight = Math.min(MAX_CPU_WEIGHT, DEFAULT_CPU_WEIGHT * limits.agentCpuFactor);
      await writeFile(join(this.root, 'agent', 'cpu.weight'), String(agentWeight));
      await writeFile(join(this.root, 'learner', 'cpu.weight'), String(DEFAULT_CPU_WEIGHT));
    }
  }

  async makeGroup(group: string): Promise<void> {
    await mkdir(join(this.root, group), { recursive: true });
  }

  procsFiles(group: string): string[] {
    return [join(this.root, group, 'cgroup.procs')];
  }

  /** With cgroup.kill (Linux 5.14+) the kernel kills the group and all below it at once; else stop, then kill. */
  async kill(group: string): Promise<void> {
    const killFile = join(this.root, group, 'cgroup.kill');
    if (existsSync(killFile)) await writeFile(killFile, '1');
    else await stopThenKill(() => readPids(join(this.root, group, 'cgroup.procs')));
  }

  async removeGroup(group: string): Promise<void> {
    await rmdir(join(this.root, group));
  }

  async listGroups(group: string): Promise<string[]> {
    const entries = await readdir(join(this.root, group), { withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  }

  async #move(pid: number, group: string): Promise<void> {
    try {
      await writeFile(join(this.root, group, 'cgroup.procs'), String(pid));
    } catch (error) {
      // A process that exited meanwhile (ESRCH) has nothing left to move.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
}
