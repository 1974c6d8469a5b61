import { readdir, readFile, readlink } from 'node:fs/promises';

/** What the density run reads from the host's /proc and cgroups (it runs as root, beside the engine). */

const CLOCK_TICKS_PER_SECOND = 100;

/** The host's MemAvailable (what can still be allocated without swapping), in bytes. */
export async function memAvailableBytes(): Promise<number> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const kib = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1];
  return Number(kib ?? Number.NaN) * 1024;
}

/** CPU time a container's cgroup has used so far (cgroup v1 cpuacct or v2 cpu.stat), in ms; null when unreadable. */
export async function containerCpuMs(containerId: string): Promise<number | null> {
  const v1 = await readFile(`/sys/fs/cgroup/cpuacct/docker/${containerId}/cpuacct.usage`, 'utf8').catch(() => null);
  if (v1 !== null) return Number(v1) / 1e6;
  for (const dir of [`/sys/fs/cgroup/system.slice/docker-${containerId}.scope`, `/sys/fs/cgroup/docker/${containerId}`]) {
    const stat = await readFile(`${dir}/cpu.stat`, 'utf8').catch(() => null);
    const usec = stat === null ? undefined : /^usage_usec (\d+)/m.exec(stat)?.[1];
    if (usec !== undefined) return Number(usec) / 1e3;
  }
  return null;
}

/** CPU time (user + system) of one process so far, in ms; 0 when it is gone. */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * The engine's processes on the host that serve these containers: dockerd and containerd of the host's own user
 * namespace (a session's inner daemons carry the same names in theirs) and the runc shims of `containerIds`.
 */
export async function enginePids(containerIds: readonly string[]): Promise<{ daemons: number[]; shims: number[] }> {
  const hostUserNs = await readlink('/proc/self/ns/user');
  const ids = new Set(containerIds);
  const daemons: number[] = [];
  const shims: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'dockerd' && comm !== 'containerd' && !comm.startsWith('containerd-shim')) continue;
    if ((await readlink(`/proc/${entry}/ns/user`).catch(() => '')) !== hostUserNs) continue;
    if (comm.startsWith('containerd-shim')) {
      const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
      const id = args[args.indexOf('-id') + 1];
      if (id !== undefined && ids.has(id)) shims.push(Number(entry));
    } else {
      daemons.push(Number(entry));
    }
  }
  return { daemons, shims };
}

export interface InotifyUse {
  /** By process name (`comm`) and host uid: inotify instances and the watches they hold. */
  processes: { name: string; hostUid: number; instances: number; watches: number }[];
  instances: number;
  watches: number;
}

/** Every inotify instance the processes `pids` hold (from /proc/<pid>/fd and fdinfo), with its watches. */
export async function inotifyUse(pids: readonly number[]): Promise<InotifyUse> {
  const use: InotifyUse = { processes: [], instances: 0, watches: 0 };
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    let instances = 0;
    let watches = 0;
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== 'anon_inode:inotify') continue;
      instances += 1;
      const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
      watches += info.split('\n').filter((line) => line.startsWith('inotify wd:')).length;
    }
    if (instances === 0) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
    use.processes.push({ name, hostUid: Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? -1), instances, watches });
    use.instances += instances;
    use.watches += watches;
  }
  return use;
}

/** The inotify limits of the host's user namespace. */
export async function hostInotifyLimits(): Promise<{ maxUserInstances: number; maxUserWatches: number }> {
  const read = async (name: string) => Number((await readFile(`/proc/sys/fs/inotify/${name}`, 'utf8')).trim());
  return { maxUserInstances: await read('max_user_instances'), maxUserWatches: await read('max_user_watches') };
}
