import { readFile, readdir, readlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from '../context.js';
import type { Row } from '../report.js';
import { summarize } from '../stats.js';

// Linux reports process times in clock ticks of 1/100 s (USER_HZ) on every architecture Docker runs on.
const TICKS_PER_SECOND = 100;
// The host engine's processes; comm is cut at 15 characters (containerd-shim-runc-v2 → containerd-shim).
const ENGINE_COMMANDS = new Set(['dockerd', 'containerd', 'containerd-shim', 'docker-proxy', 'runc']);
// What the session still does right after it answers (its last log lines, the first watch of the daemon) belongs to
// its start too.
const SETTLE_MS = 1_000;
const TARGET_MS = 2_500;

/**
 * The CPU time one cold session start costs the machine, each create alone (nothing else from the bench runs):
 * the session container's cgroup (agent, inner dockerd and all it starts, their kernel time), the host engine
 * (dockerd, containerd and the session's shim, from /proc/<pid>/stat) and the controller.
 * The whole machine's busy time over the same span (/proc/stat, which also holds other work on a shared machine)
 * is the note's upper bound.
 */
export async function measureStartCost(ctx: BenchContext): Promise<Row[]> {
  const { runner, env, profile } = ctx;
  const totals: number[] = [];
  const parts = { session: [] as number[], engine: [] as number[], controller: [] as number[], machine: [] as number[] };
  for (let i = 1; i <= profile.createRounds; i++) {
    const id = `cost-${i}`;
    const engineBefore = await engineTicks();
    const controllerBefore = await env.controller.cpuMs();
    const machineBefore = await machineBusyMs();
    try {
      const { container_name: name } = await runner.createSession({ session_id: id });
      await sleep(SETTLE_MS);
      const { Id: containerId, State } = await env.docker.getContainer(name).inspect();
      const session = await containerCpuMs(State.Pid);
      const engine = engineCpuMs(engineBefore, await engineTicks(), containerId);
      const controller = (await env.controller.cpuMs()) - controllerBefore;
      parts.session.push(session);
      parts.engine.push(engine);
      parts.controller.push(controller);
      parts.machine.push((await machineBusyMs()) - machineBefore);
      totals.push(session + engine + controller);
    } finally {
      await runner.deleteSession(id);
    }
  }
  ctx.record('start_cost', { total: totals, ...parts });
  const p50 = (values: number[]) => summarize(values).p50;
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return [
    {
      figure: 'CPU time one session start costs (session + engine + controller), p50',
      value: p50(totals),
      unit: 'ms',
      target: `≤ ${s(TARGET_MS)}`,
      pass: p50(totals) <= TARGET_MS,
      note:
        `n=${totals.length}; p50 session ${s(p50(parts.session))}, engine ${s(p50(parts.engine))}, controller ` +
        `${s(p50(parts.controller))}; the whole machine was busy ${s(p50(parts.machine))} meanwhile`,
    },
  ];
}

/** Ticks of user and system time of a process and its waited-for children, from /proc/<pid>/stat. */
async function processTicks(pid: string): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces), from the state on: utime is the 12th, then stime, cutime, cstime.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return fields[11]! + fields[12]! + fields[13]! + fields[14]!;
}

interface EngineProcess {
  comm: string;
  cmdline: string;
  ticks: number;
}

/** The host engine's processes by pid: those in the host's pid namespace (sessions run a dockerd of their own). */
async function engineTicks(): Promise<Map<string, EngineProcess>> {
  const hostPids = await readlink('/proc/self/ns/pid');
  const found = new Map<string, EngineProcess>();
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    try {
      const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
      if (!ENGINE_COMMANDS.has(comm) || (await readlink(`/proc/${pid}/ns/pid`)) !== hostPids) continue;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      found.set(pid, { comm, cmdline, ticks: await processTicks(pid) });
    } catch {
      // It ended meanwhile.
    }
  }
  return found;
}

/**
 * The engine's CPU time (ms) between two looks: what the processes seen both times spent, and all of what the new
 * ones did. Of the shims, only the session's own counts (those of other containers come and go on a shared engine).
 */
function engineCpuMs(before: Map<string, EngineProcess>, after: Map<string, EngineProcess>, containerId: string): number {
  let ticks = 0;
  for (const [pid, now] of after) {
    if (now.comm === 'containerd-shim' && !now.cmdline.includes(containerId)) continue;
    const then = before.get(pid);
    ticks += then && then.comm === now.comm ? now.ticks - then.ticks : now.ticks;
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** All CPU time (ms) of the cgroup of a container whose first process is `pid`: cgroup v1's cpuacct or v2's cpu.stat. */
async function containerCpuMs(pid: number): Promise<number> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
  const v1 = lines.map((line) => line.split(':')).find(([, controllers]) => controllers?.split(',').includes('cpuacct'));
  if (v1) {
    const usage = await readFile(`/sys/fs/cgroup/${v1[1]}${v1.slice(2).join(':')}/cpuacct.usage`, 'utf8');
    return Number(usage) / 1e6;
  }
  const v2 = lines.find((line) => line.startsWith('0::'));
  if (!v2) throw new Error(`no cpuacct or cgroup v2 line in /proc/${pid}/cgroup`);
  const stat = await readFile(`/sys/fs/cgroup${v2.slice(3)}/cpu.stat`, 'utf8');
  return Number(/^usage_usec (\d+)/m.exec(stat)![1]) / 1000;
}

/** The machine's busy CPU time (ms) since boot: every CPU's time but idle and iowait, from /proc/stat. */
async function machineBusyMs(): Promise<number> {
  const [, ...values] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = values as number[];
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / TICKS_PER_SECOND;
}
