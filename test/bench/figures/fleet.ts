import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { execOk, type AgentCalls } from '../agent-api.js';
import { dockerCli } from '../bench-env.js';
import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, missingRow, type Row } from '../report.js';
import { summarize, timed } from '../stats.js';

const MIB = 1024 * 1024;
// Creating sessions three at a time: more only queues on 2 cores and makes starts time out.
const CREATE_CONCURRENCY = 3;
const LOAD_MAX_PER_SESSION = 100_000;
const RSS_SAMPLE_MS = 1_000;

/**
 * Grows to `profile.sessions` sessions (the main one included), lets the new ones sit idle, then reads their memory
 * with `docker stats` and the controller's RSS; then every session runs an exec loop through the controller at once.
 * Returns the fleet so the caller removes it.
 */
export async function measureFleet(ctx: BenchContext, main: BenchSession, rssAtStart: number): Promise<{ rows: Row[]; fleet: BenchSession[] }> {
  const { profile, env } = ctx;
  const count = profile.sessions;
  const limit = pLimit(CREATE_CONCURRENCY);
  const fresh: BenchSession[] = [];
  const createTimes: number[] = [];
  ctx.log(`creating ${count - 1} more sessions, ${CREATE_CONCURRENCY} at a time`);
  const started = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: count - 1 }, (_, i) =>
      limit(async () => {
        let session: BenchSession | undefined;
        createTimes.push(await timed(async () => (session = await ctx.openSession(`fleet-${i + 1}`))));
        fresh.push(session!);
      }),
    ),
  );
  const createWallMs = performance.now() - started;
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`${failed.length} of ${count - 1} sessions failed to start: ${String((failed[0] as PromiseRejectedResult).reason)}`);
  const creates = ctx.record('fleet_create', { concurrent: createTimes });
  const fleet = [main, ...fresh];

  ctx.log(`letting ${fresh.length} new sessions idle for ${profile.idleSettleMs / 1000} s`);
  await sleep(profile.idleSettleMs);
  const memory = await idleMemoryMiB(fresh.map((s) => s.containerName));
  const mem = summarize(memory);
  ctx.extras.idle_memory_mib = memory;
  const rss = (await env.controller.rssBytes()) / MIB;
  const breakdown = await processMemory(fresh[0]!.containerName);
  const cgroup = await cgroupMemory(fresh[0]!);
  ctx.extras.idle_session_process_anon_mib = breakdown;
  ctx.extras.idle_session_cgroup_memory_mib = cgroup;
  const split = cgroup ? `; cgroup: anon ${cgroup.anon.toFixed(0)}, active file ${cgroup.activeFile.toFixed(0)}, kernel ${cgroup.kernel.toFixed(0)} MiB` : '';

  ctx.log(`exec loop in ${fleet.length} sessions for ${profile.loadMs / 1000} s through the controller`);
  const { result: load, cpuMs } = await ctx.withControllerCpu(() => execLoad(ctx, fleet, (f) => f.viaController, profile.loadMs));
  // The same loop straight to the agents: what the sessions themselves manage, so the controller's share shows.
  const directMs = profile.loadMs / 2;
  ctx.log(`the same loop direct to the agents for ${directMs / 1000} s`);
  const direct = await execLoad(ctx, fleet, (f) => f.direct, directMs);
  const s = ctx.record('fleet_exec_load', { controller: load.latencies, direct: direct.latencies });

  const rows: Row[] = [
    {
      figure: `idle memory per session (docker stats), median of ${memory.length}`,
      value: mem.p50,
      unit: 'MiB',
      target: '≤ 48 MiB',
      pass: mem.p50 <= 48,
      note: `min ${mem.min.toFixed(1)}, max ${mem.max.toFixed(1)} MiB, ${profile.idleSettleMs / 1000} s after ready; anonymous memory by process in one: ${Object.entries(breakdown)
        .slice(0, 6)
        .map(([name, mib]) => `${name} ${mib.toFixed(0)}`)
        .join(', ')} MiB${split}`,
    },
    compareRow(`controller RSS with ${fleet.length} sessions`, 'MiB', rss, 'RSS with no sessions', rssAtStart / MIB, {
      by: 'delta',
      note: `peak ${(load.peakRssBytes / MIB).toFixed(1)} MiB during the exec loop; ${fleet.length - 1} sessions created ${CREATE_CONCURRENCY} at a time in ${(createWallMs / 1000).toFixed(1)} s (each p50 ${(creates.concurrent.p50 / 1000).toFixed(2)} s)`,
    }),
  ];
  if (s.controller.n === 0 || s.direct.n === 0) {
    rows.push(missingRow(`${fleet.length} sessions × exec loop`, 'ops/s', `no exec succeeded; ${load.errors} errors via controller, ${direct.errors} direct`));
  } else {
    const label = `${fleet.length} sessions × exec loop ${(load.elapsedMs / 1000).toFixed(0)} s`;
    const directLabel = `direct to agents, ${(direct.elapsedMs / 1000).toFixed(0)} s`;
    rows.push(
      compareRow(`${label}: throughput`, 'ops/s', s.controller.n / (load.elapsedMs / 1000), directLabel, s.direct.n / (direct.elapsedMs / 1000), {
        note: `${s.controller.n} execs; controller CPU ${(cpuMs / (s.controller.n + load.errors)).toFixed(2)} ms per exec, ${((100 * cpuMs) / load.elapsedMs).toFixed(0)}% of a core`,
      }),
      compareRow(`${label}: p50`, 'ms', s.controller.p50, directLabel, s.direct.p50),
      compareRow(`${label}: p99`, 'ms', s.controller.p99, directLabel, s.direct.p99),
      compareRow(`${label}: errors`, 'count', load.errors, directLabel, direct.errors, {
        by: 'delta',
        target: { text: '0', check: (v) => v === 0 },
        ...(load.firstError ? { note: `first: ${load.firstError}` } : {}),
      }),
    );
  }
  return { rows, fleet };
}

/** Memory of each container as `docker stats` reports it (usage without the page cache), in MiB. */
export async function idleMemoryMiB(names: string[]): Promise<number[]> {
  const out = await dockerCli(['stats', '--no-stream', '--format', '{{.Name}}\t{{.MemUsage}}', ...names]);
  return out
    .trim()
    .split('\n')
    .map((line) => parseSize(line.split('\t')[1]?.split('/')[0]?.trim() ?? ''));
}

/** Anonymous memory (RssAnon: heaps, stacks) of the processes in a session by name, largest first, in MiB. */
async function processMemory(containerName: string): Promise<Record<string, number>> {
  const out = await dockerCli(['exec', containerName, 'sh', '-c', 'cat /proc/[0-9]*/status 2>/dev/null']);
  const byName = new Map<string, number>();
  let name = '';
  for (const line of out.split('\n')) {
    const [key, value = ''] = line.split(':\t');
    if (key === 'Name') name = value.trim();
    if (key === 'RssAnon' && name !== 'cat' && name !== 'sh') byName.set(name, (byName.get(name) ?? 0) + Number.parseInt(value, 10) / 1024);
  }
  return Object.fromEntries([...byName].sort((a, b) => b[1] - a[1]));
}

interface CgroupMemory {
  /** Anonymous memory (heaps, stacks). */
  anon: number;
  /** Page cache docker stats counts (it subtracts only inactive file pages). */
  activeFile: number;
  inactiveFile: number;
  /** Kernel memory charged to the container (slab, sockets, page tables); cgroup v2 only, else 0. */
  kernel: number;
}

/** The container's memory by kind from its cgroup's memory.stat (v1 or v2), in MiB; null when it cannot be read. */
async function cgroupMemory(session: BenchSession): Promise<CgroupMemory | null> {
  const id = (await session.container.inspect()).Id;
  const candidates = [
    `/sys/fs/cgroup/memory/docker/${id}/memory.stat`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.stat`,
    `/sys/fs/cgroup/docker/${id}/memory.stat`,
  ];
  for (const path of candidates) {
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text === null) continue;
    const stat = new Map(text.trim().split('\n').map((line) => [line.split(' ')[0]!, Number(line.split(' ')[1]) / MIB]));
    const v1 = stat.has('total_rss');
    return {
      anon: (v1 ? stat.get('total_rss') : stat.get('anon')) ?? 0,
      activeFile: (v1 ? stat.get('total_active_file') : stat.get('active_file')) ?? 0,
      inactiveFile: (v1 ? stat.get('total_inactive_file') : stat.get('inactive_file')) ?? 0,
      kernel: v1 ? 0 : (stat.get('kernel') ?? (stat.get('slab') ?? 0) + (stat.get('sock') ?? 0) + (stat.get('pagetables') ?? 0)),
    };
  }
  return null;
}

function parseSize(text: string): number {
  const match = /^([\d.]+)\s*([KMGT]?i?B)$/i.exec(text);
  if (!match) throw new Error(`unreadable docker stats size: ${text}`);
  const factor: Record<string, number> = { B: 1 / MIB, KIB: 1 / 1024, KB: 1000 / MIB, MIB: 1, MB: 1e6 / MIB, GIB: 1024, GB: 1e9 / MIB };
  return Number(match[1]) * (factor[match[2]!.toUpperCase()] ?? Number.NaN);
}

interface LoadResult {
  latencies: number[];
  errors: number;
  firstError?: string;
  elapsedMs: number;
  peakRssBytes: number;
}

/** One loop per session, all at once, each running `true` (through `via`) until the time is up. */
async function execLoad(ctx: BenchContext, fleet: BenchSession[], via: (s: BenchSession) => AgentCalls, durationMs: number): Promise<LoadResult> {
  const result: LoadResult = { latencies: [], errors: 0, elapsedMs: 0, peakRssBytes: 0 };
  const start = performance.now();
  const deadline = start + durationMs;
  const sampler = setInterval(() => {
    void ctx.env.controller.rssBytes().then(
      (rss) => (result.peakRssBytes = Math.max(result.peakRssBytes, rss)),
      () => {},
    );
  }, RSS_SAMPLE_MS);
  const loop = async (session: BenchSession) => {
    for (let i = 0; i < LOAD_MAX_PER_SESSION && performance.now() < deadline; i++) {
      const t0 = performance.now();
      try {
        await execOk(via(session), ['true']);
        result.latencies.push(performance.now() - t0);
      } catch (error) {
        result.errors += 1;
        result.firstError ??= (error as Error).message.slice(0, 200);
      }
    }
  };
  try {
    await Promise.all(fleet.map(loop));
  } finally {
    clearInterval(sampler);
  }
  result.elapsedMs = performance.now() - start;
  return result;
}
