import { copyFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import { setTimeout as sleep } from 'node:timers/promises';
import { RunnerClient, RunnerError } from '../../../client/src/index.js';
import { BenchEnv, dockerCli } from '../bench-env.js';
import { idleMemoryMiB } from '../figures/fleet.js';
import type { ModeOptions, ModeResult } from '../mode.js';
import { missingRow, type Row } from '../report.js';
import { summarize } from '../stats.js';
import { containerCpuMs, enginePids, hostInotifyLimits, inotifyUse, memAvailableBytes, processCpuMs, type InotifyUse } from './host-probes.js';
import { SessionWatch } from './session-watch.js';

const CONTROLLER_LOG_COPY = new URL('../results/density-controller.log', import.meta.url).pathname;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
// Sessions are created in batches: the create time is reported per batch, so that its growth with the count shows.
const BATCH = 20;
// More at once only queues behind the controller's MAX_CONCURRENT_STARTS (3).
const CREATE_CONCURRENCY = 3;
const CREATE_TIMEOUT_MS = 180_000;
const WATCH_READY_TIMEOUT_MS = 60_000;
const WATCH_EVENT_TIMEOUT_MS = 20_000;
// The run stops growing before the host runs out: the machine is shared, and an OOM kill is no finding.
const MIN_AVAILABLE_BYTES = 1.5 * GIB;
const SETTLE_MS = 20_000;
const IDLE_WINDOW_MS = 30_000;
const EXEC_ROUNDS = 3;
const EXEC_CONCURRENCY = 2;

export interface DensityOptions extends ModeOptions {
  /** How many sessions to reach. */
  target: number;
}

interface Held {
  id: string;
  containerName: string;
  containerId: string;
  watch: SessionWatch;
}

/** Why the run stopped short of its target: the first failure, and how much memory the host had left. */
interface Stop {
  at: number;
  reason: string;
  availableMiB: number;
}

/**
 * `npm run bench -- --density N`: N sessions, each with a `/watch` stream open, idle; then what they cost the host
 * (memory, idle CPU, the controller's RSS), how fast they still answer (a round of `true` execs over all of them),
 * and whether every watch still reports (a file written in each). Everything it made is removed, also on a signal.
 */
export async function runDensity(options: DensityOptions): Promise<ModeResult> {
  const { target, log } = options;
  const env = await BenchEnv.create();
  const held: Held[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: removing everything this run made`);
    for (const h of held) h.watch.close();
    void env.cleanup().finally(() => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);

  const rows: Row[] = [];
  const extras: Record<string, unknown> = {};
  const errors: string[] = [];
  try {
    log('removing leftovers of killed runs');
    await env.sweepLeftovers();
    await options.prepare();
    // Every session must fit, and none may expire during a long run.
    const controller = await env.startController({ MAX_SESSIONS: String(target), SESSION_TTL_SECONDS: '7200' });
    await sleep(2_000);
    const rssAtStartMiB = (await controller.rssBytes()) / MIB;
    extras.host_inotify_limits = await hostInotifyLimits();
    const runner = new RunnerClient({ baseUrl: controller.url, fetch: fetchWithTimeout });

    const stop = await grow(runner, env, target, held, rows, log);
    if (stop) {
      errors.push(`stopped at ${stop.at} of ${target} sessions: ${stop.reason}`);
      extras.stopped = stop;
    }
    if (held.length === 0) throw new Error('no session started');

    log(`${held.length} sessions with a watch open: letting them settle for ${SETTLE_MS / 1000} s`);
    await sleep(SETTLE_MS);
    log(`measuring ${IDLE_WINDOW_MS / 1000} s of idling`);
    const idle = await idleCpu(env, held, IDLE_WINDOW_MS);
    extras.idle_cpu_ms = idle;
    const memory = await idleMemoryMiB(held.map((h) => h.containerName));
    extras.idle_memory_mib = memory;
    const rssMiB = (await controller.rssBytes()) / MIB;
    const availableMiB = (await memAvailableBytes()) / MIB;
    const inotify = await sessionInotify(held[0]!.containerName);
    extras.inotify_first_session = inotify;

    log(`${EXEC_ROUNDS} rounds of \`true\` over all ${held.length} sessions, ${EXEC_CONCURRENCY} at a time`);
    const exec = await execRound(runner, held);
    log(`a file written in each of ${held.length} sessions, its watch event awaited`);
    const watched = await watchCheck(runner, held);

    const n = held.length;
    const mem = summarize(memory);
    const perSession = idle.totalMs / (IDLE_WINDOW_MS / 1000) / n;
    const ex = summarize(exec.latencies);
    rows.push(
      { figure: 'sessions held, each with a /watch stream', value: n, unit: 'count', target: `≥ ${target}`, pass: n >= target, note: stop ? `stopped: ${stop.reason}` : undefined },
      {
        figure: `idle memory per session (docker stats), median of ${n}`,
        value: mem.p50,
        unit: 'MiB',
        target: '≤ 48 MiB',
        pass: mem.p50 <= 48,
        note: `min ${mem.min.toFixed(1)}, max ${mem.max.toFixed(1)} MiB; host MemAvailable ${(availableMiB / 1024).toFixed(1)} GiB with all held`,
      },
      {
        figure: `idle CPU per session over ${IDLE_WINDOW_MS / 1000} s`,
        value: perSession,
        unit: 'millicores',
        target: '≤ 2 millicores',
        pass: perSession <= 2,
        note: `whole: sessions ${idle.sessionsMs.toFixed(0)} ms, their runc shims ${idle.shimsMs.toFixed(0)} ms, dockerd + containerd ${idle.daemonsMs.toFixed(0)} ms (shared with other work), controller ${idle.controllerMs.toFixed(0)} ms`,
      },
      {
        figure: `controller RSS with ${n} sessions`,
        value: rssMiB,
        unit: 'MiB',
        target: '≤ 160 MiB',
        pass: rssMiB <= 160,
        note: `${rssAtStartMiB.toFixed(0)} MiB with none`,
      },
    );
    if (ex.n === 0) rows.push(missingRow(`exec \`true\` across ${n} sessions`, 'ms', `no exec succeeded; first error: ${exec.firstError ?? '?'}`));
    else {
      const errorNote = exec.errors > 0 ? `; ${exec.errors} failed, first: ${exec.firstError}` : '';
      rows.push(
        { figure: `exec \`true\` across ${n} sessions, p50`, value: ex.p50, unit: 'ms', pass: null, note: `${ex.n} execs, ${EXEC_ROUNDS} rounds${errorNote}` },
        { figure: `exec \`true\` across ${n} sessions, p99`, value: ex.p99, unit: 'ms', target: '≤ 50 ms', pass: ex.p99 <= 50 && exec.errors === 0 },
      );
    }
    rows.push({
      figure: 'watches that reported a file written in their session',
      value: watched.ok,
      unit: 'count',
      target: `${n} of ${n}`,
      pass: watched.ok === n,
      note: `${inotify.instances} inotify instance(s), ${inotify.watches} watch(es) per idle session (${inotify.processes.map((p) => `${p.name} uid ${p.hostUid}: ${p.instances}/${p.watches}`).join(', ') || 'none'})${watched.firstError ? `; first failure: ${watched.firstError}` : ''}`,
    });
  } catch (error) {
    errors.push((error as Error).stack ?? String(error));
    log(`density run aborted: ${(error as Error).message}`);
  } finally {
    for (const h of held) h.watch.close();
    // The controller's own log outlives the run, for whoever reads a MISS or an ERROR.
    await copyFile(env.controllerLog, CONTROLLER_LOG_COPY).catch(() => {});
    log('cleaning up containers, volumes, network and folders');
    await env.cleanup().catch((error: unknown) => errors.push(`cleanup: ${String(error)}`));
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, onSignal);
  }
  return { rows, extras, errors };
}

// Every call but a stream gets a deadline: a stuck controller fails the run instead of hanging it.
const fetchWithTimeout: typeof fetch = (input, init) => fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(CREATE_TIMEOUT_MS) });

/** Creates sessions in batches until `target` or the first failure; returns why it stopped short, if it did. */
async function grow(runner: RunnerClient, env: BenchEnv, target: number, held: Held[], rows: Row[], log: (m: string) => void): Promise<Stop | null> {
  const limit = pLimit(CREATE_CONCURRENCY);
  const began = performance.now();
  for (let from = 0; from < target; from += BATCH) {
    const availableMiB = (await memAvailableBytes()) / MIB;
    if (availableMiB * MIB < MIN_AVAILABLE_BYTES) {
      return { at: held.length, reason: `the host has ${availableMiB.toFixed(0)} MiB available, below the run's floor of ${MIN_AVAILABLE_BYTES / MIB} MiB`, availableMiB };
    }
    const ids = Array.from({ length: Math.min(BATCH, target - from) }, (_, i) => `density-${from + i + 1}`);
    const times: number[] = [];
    let failure: { error: unknown; id: string } | undefined;
    const batchStart = performance.now();
    await Promise.all(
      ids.map((id) =>
        limit(async () => {
          if (failure) return;
          const t0 = performance.now();
          try {
            const info = await runner.createSession({ session_id: id });
            times.push(performance.now() - t0);
            const watch = new SessionWatch(runner.session(id));
            const containerId = (await env.docker.getContainer(info.container_name).inspect()).Id;
            held.push({ id, containerName: info.container_name, containerId, watch });
            await watch.waitFor((f) => f.type === 'ready', WATCH_READY_TIMEOUT_MS);
          } catch (error) {
            failure ??= { error, id };
          }
        }),
      ),
    );
    const s = summarize(times);
    const label = `creates ${from + 1}–${from + ids.length}`;
    const note = `${times.length} created in ${((performance.now() - batchStart) / 1000).toFixed(1)} s, ${CREATE_CONCURRENCY} at a time; max ${(s.max / 1000).toFixed(2)} s; MemAvailable before ${(availableMiB / 1024).toFixed(1)} GiB`;
    rows.push(times.length > 0 ? { figure: `${label}, p50`, value: s.p50, unit: 'ms', pass: null, note } : missingRow(label, 'ms', 'none succeeded'));
    log(`${held.length}/${target} sessions after ${((performance.now() - began) / 1000).toFixed(0)} s; this batch p50 ${(s.p50 / 1000).toFixed(2)} s; MemAvailable ${((await memAvailableBytes()) / GIB).toFixed(1)} GiB`);
    if (failure) {
      const { error, id } = failure;
      const what = error instanceof RunnerError ? `${error.code} (${error.status}): ${error.message}` : (error as Error).message;
      return { at: held.length, reason: `session ${id}: ${what}`.slice(0, 500), availableMiB: (await memAvailableBytes()) / MIB };
    }
  }
  return null;
}

/** CPU time spent over `windowMs` of idling by the sessions' cgroups, their shims, the engine and the controller. */
async function idleCpu(env: BenchEnv, held: Held[], windowMs: number) {
  const { daemons, shims } = await enginePids(held.map((h) => h.containerId));
  const sample = async () => {
    const sessions = await Promise.all(held.map((h) => containerCpuMs(h.containerId)));
    const sum = async (pids: number[]) => (await Promise.all(pids.map(processCpuMs))).reduce((a, b) => a + b, 0);
    return {
      sessions: sessions.reduce<number>((a, b) => a + (b ?? 0), 0),
      unreadable: sessions.filter((v) => v === null).length,
      shims: await sum(shims),
      daemons: await sum(daemons),
      controller: await env.controller.cpuMs(),
    };
  };
  const before = await sample();
  await sleep(windowMs);
  const after = await sample();
  const result = {
    sessionsMs: after.sessions - before.sessions,
    shimsMs: after.shims - before.shims,
    daemonsMs: after.daemons - before.daemons,
    controllerMs: after.controller - before.controller,
    unreadableCgroups: after.unreadable,
    shimCount: shims.length,
    totalMs: 0,
  };
  result.totalMs = result.sessionsMs + result.shimsMs + result.daemonsMs + result.controllerMs;
  return result;
}

/** The inotify instances and watches the processes of one session hold. */
async function sessionInotify(containerName: string): Promise<InotifyUse> {
  const out = await dockerCli(['top', containerName, '-eo', 'pid']);
  const pids = out.trim().split('\n').slice(1).map(Number).filter(Number.isInteger);
  return inotifyUse(pids);
}

async function execRound(runner: RunnerClient, held: Held[]) {
  const result = { latencies: [] as number[], errors: 0, firstError: undefined as string | undefined };
  const limit = pLimit(EXEC_CONCURRENCY);
  for (let round = 0; round < EXEC_ROUNDS; round++) {
    await Promise.all(
      held.map((h) =>
        limit(async () => {
          const t0 = performance.now();
          try {
            const answer = await runner.session(h.id).exec({ command: ['true'] });
            if (answer.exit_code !== 0) throw new Error(`true exited ${answer.exit_code}`);
            result.latencies.push(performance.now() - t0);
          } catch (error) {
            result.errors += 1;
            result.firstError ??= `${h.id}: ${(error as Error).message}`.slice(0, 200);
          }
        }),
      ),
    );
  }
  return result;
}

/** Writes `/workspace/density-check-<k>.txt` in every session and waits for its watch to report it. */
async function watchCheck(runner: RunnerClient, held: Held[]): Promise<{ ok: number; firstError?: string }> {
  const limit = pLimit(4);
  let ok = 0;
  let firstError: string | undefined;
  await Promise.all(
    held.map((h, k) =>
      limit(async () => {
        const name = `density-check-${k + 1}.txt`;
        try {
          const seen = h.watch.waitFor((f) => f.type === 'created' && f.path === name, WATCH_EVENT_TIMEOUT_MS);
          seen.catch(() => {}); // awaited below, unless the write fails first
          await runner.session(h.id).writeFile(`/workspace/${name}`, `session ${k + 1}\n`);
          await seen;
          ok += 1;
        } catch (error) {
          firstError ??= `${h.id}: ${(error as Error).message}`.slice(0, 300);
        }
      }),
    ),
  );
  return { ok, firstError };
}
