import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isMountPoint, readPids, stopThenKill, waitUntilOwned, type CgroupDriver, type LearnerLimits } from './cgroup-driver.js';

const run = promisify(execFile);
// cpu.shares of a group nobody set: the learner's, against which the agent's is multiplied.
const DEFAULT_CPU_SHARES = 1024;

/** A v1 hierarchy the agent mounts: its name under the root and the controllers it has on the host ("cpu,cpuacct"). */
export interface V1Hierarchy {
  name: 'pids' | 'cpu';
  controllers: string;
}

/**
 * cgroup v1: one hierarchy per controller, each mounted at `<root>/<name>`, every group made in each. A process
 * moves by writing its pid to the target's cgroup.procs; the kernel asks for write access to that file only, so
 * the files stay root's and only the agent moves processes.
 */
export class CgroupV1 implements CgroupDriver {
  readonly version = 1;

  constructor(
    readonly root: string,
    readonly hierarchies: readonly V1Hierarchy[],
    private readonly handOverWaitMs: number,
  ) {}

  async mount(mountinfo: string): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o755 });
    for (const { name, controllers } of this.hierarchies) {
      const dir = join(this.root, name);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      // An agent restarted in the same container finds its mounts there.
      if (!isMountPoint(mountinfo, dir)) await run('mount', ['-t', 'cgroup', '-o', controllers, 'cgroup', dir]);
      if (!(await waitUntilOwned(dir, this.handOverWaitMs))) {
        throw new Error(`${dir} is not the session root's (on a remapped engine the controller hands it over at the start; did it?)`);
      }
    }
  }

  async readSessionPidsMax(): Promise<string> {
    return readFile(join(this.root, 'pids', 'pids.max'), 'utf8');
  }

  async setUp(limits: LearnerLimits, agentPid: number): Promise<void> {
    for (const group of ['agent', 'learner']) await this.makeGroup(group);
    await writeFile(join(this.root, 'pids', 'learner', 'pids.max'), limits.pidsMax);
    await writeFile(join(this.root, 'cpu', 'agent', 'cpu.shares'), String(DEFAULT_CPU_SHARES * limits.agentCpuFactor));
    await writeFile(join(this.root, 'cpu', 'learner', 'cpu.shares'), String(DEFAULT_CPU_SHARES));
    // cgroup.procs moves every thread of the agent; its children from now on start in `agent` too.
    for (const procs of this.procsFiles('agent')) await writeFile(procs, String(agentPid));
  }

  async makeGroup(group: string): Promise<void> {
    for (const { name } of this.hierarchies) await mkdir(join(this.root, name, group), { recursive: true });
  }

  procsFiles(group: string): string[] {
    return this.hierarchies.map(({ name }) => join(this.root, name, group, 'cgroup.procs'));
  }

  // Every process of a group is in its pids group (all learner groups are made in every hierarchy).
  async kill(group: string): Promise<void> {
    await stopThenKill(() => readPids(join(this.root, 'pids', group, 'cgroup.procs')));
  }

  async removeGroup(group: string): Promise<void> {
    for (const { name } of this.hierarchies) await rmdir(join(this.root, name, group));
  }

  async listGroups(group: string): Promise<string[]> {
    const entries = await readdir(join(this.root, 'pids', group), { withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  }
}
