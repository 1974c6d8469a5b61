import { copyFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { RunnerError, type RunnerClient } from '../../../client/src/index.js';
import { Label } from '../../../controller/runtime/labels.js';
import { benchClient } from '../agent-api.js';
import { BenchEnv } from '../bench-env.js';
import { metric, scrape, waitPoolFull } from '../figures/warm-create.js';
import type { ModeOptions, ModeResult } from '../mode.js';
import { compareRow, missingRow, type Row } from '../report.js';
import { summarize, timed } from '../stats.js';

const CONTROLLER_LOG_COPY = new URL('../results/classroom-controller.log', import.meta.url).pathname;
const CLASS = 30;
// Creates alone before the class, each removed before the next: the same run's figure for one learner.
const ALONE_ROUNDS = 3;
const POOL_FILL_TIMEOUT_MS = 900_000;
// After the pool reports full: the members' daemons finish starting, as a pool filled before class would have.
const SETTLE_MS = 20_000;
const COLD_TARGET_MS = 20_000;
const WARM_TARGET_MS = 1_000;

interface Wave {
  times: number[];
  /** Container names of the sessions made, so the claimed ones can be told apart. */
  containers: string[];
  failures: string[];
  wallMs: number;
}

/**
 * `npm run bench -- --classroom`: a class of 30 learners pressing "start" at once, through the typed client. First
 * with the controller's defaults: 30 cold creates at once. Then with
 * WARM_POOL_SIZE=30, once the pool is full and settled: 30 creates at once that claim members. Each against the
 * same run's create alone. Everything it made is removed, also on a signal.
 */
export async function runClassroom(options: ModeOptions): Promise<ModeResult> {
  const { log } = options;
  const env = await BenchEnv.create();
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: removing everything this run made`);
    void env.cleanup().finally(() => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);

  const rows: Row[] = [];
  const extras: Record<string, unknown> = {};
  const errors: string[] = [];
  let client: ReturnType<typeof benchClient> | undefined;
  const startController = async (extra: Record<string, string>) => {
    await client?.close();
    const controller = await env.startController(extra);
    client = benchClient(controller.url);
    return client.runner;
  };
  try {
    log('removing leftovers of killed runs');
    await env.sweepLeftovers();
    await options.prepare();

    let runner = await startController({});
    log(`${ALONE_ROUNDS} cold creates alone`);
    const coldAlone = await alone(runner, 'alone-cold');
    log(`${CLASS} cold creates at once`);
    const cold = await wave(runner, 'cold');
    await removeAll(runner);
    rows.push(...coldRows(coldAlone, cold));
    extras.cold = { alone: coldAlone, ...cold };

    log(`restarting the controller with WARM_POOL_SIZE=${CLASS}; waiting for the pool to fill`);
    runner = await startController({ WARM_POOL_SIZE: String(CLASS) });
    const fillMs = await timed(() => waitFull(runner));
    log(`pool full in ${(fillMs / 1000).toFixed(0)} s; one claim alone, then ${SETTLE_MS / 1000} s of settling`);
    const warmAlone = await alone(runner, 'alone-warm', 1);
    await waitFull(runner);
    await sleep(SETTLE_MS);
    const before = await scrape(runner);
    log(`${CLASS} creates at once from the pool`);
    const warm = await wave(runner, 'warm');
    const after = await scrape(runner);
    const delta = (name: string) => metric(after, name) - metric(before, name);
    const claims = { claims: delta('runner_warm_pool_claims_total'), misses: delta('runner_warm_pool_misses_total'), fromPool: await fromPool(env, warm) };
    await removeAll(runner);
    rows.push(...warmRows(warmAlone, warm, claims, fillMs));
    extras.warm = { alone: warmAlone, fill_ms: fillMs, ...claims, ...warm };
  } catch (error) {
    errors.push((error as Error).stack ?? String(error));
    log(`classroom run aborted: ${(error as Error).message}`);
  } finally {
    await client?.close().catch(() => {});
    // The controller's own log outlives the run, for whoever reads a MISS or an ERROR.
    await copyFile(env.controllerLog, CONTROLLER_LOG_COPY).catch(() => {});
    log('cleaning up containers, volumes, network and folders');
    await env.cleanup().catch((error: unknown) => errors.push(`cleanup: ${String(error)}`));
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, onSignal);
  }
  return { rows, extras, errors };
}

async function waitFull(runner: RunnerClient): Promise<void> {
  if (!(await waitPoolFull(runner, CLASS, POOL_FILL_TIMEOUT_MS))) throw new Error(`the pool did not reach ${CLASS} ready in ${POOL_FILL_TIMEOUT_MS / 1000} s`);
}

/** Creates timed one at a time, each removed (untimed) before the next. */
async function alone(runner: RunnerClient, prefix: string, rounds = ALONE_ROUNDS): Promise<number[]> {
  const times: number[] = [];
  for (let i = 1; i <= rounds; i++) {
    times.push(await timed(() => runner.createSession({ session_id: `${prefix}-${i}` })));
    await runner.deleteSession(`${prefix}-${i}`);
  }
  return times;
}

/** The class: `CLASS` creates sent at once, each timed until its answer. */
async function wave(runner: RunnerClient, prefix: string): Promise<Wave> {
  const result: Wave = { times: [], containers: [], failures: [], wallMs: 0 };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLASS }, async (_, i) => {
      const t0 = performance.now();
      try {
        const info = await runner.createSession({ session_id: `${prefix}-${i + 1}` });
        result.times.push(performance.now() - t0);
        result.containers.push(info.container_name);
      } catch (error) {
        const what = error instanceof RunnerError ? `${error.code} (${error.status}): ${error.message}` : (error as Error).message;
        result.failures.push(`${prefix}-${i + 1}: ${what}`.slice(0, 300));
      }
    }),
  );
  result.wallMs = performance.now() - started;
  return result;
}

/** How many of the wave's sessions run in a container the pool started: its pool-id label stays after a claim. */
async function fromPool(env: BenchEnv, w: Wave): Promise<number> {
  const labels = await Promise.all(w.containers.map(async (name) => (await env.docker.getContainer(name).inspect()).Config.Labels ?? {}));
  return labels.filter((l) => l[Label.poolId] !== undefined).length;
}

async function removeAll(runner: RunnerClient): Promise<void> {
  const limit = pLimit(4);
  await Promise.all((await runner.listSessions()).map((s) => limit(() => runner.deleteSession(s.session_id))));
}

function failureNote(w: Wave): string {
  return w.failures.length > 0 ? `; first failure: ${w.failures[0]}` : '';
}

function coldRows(aloneTimes: number[], cold: Wave): Row[] {
  const a = summarize(aloneTimes);
  const s = summarize(cold.times);
  const label = `${CLASS} concurrent cold creates`;
  const settings = 'every setting its default (MAX_SESSIONS 50, MAX_CONCURRENT_STARTS 3)';
  if (s.n === 0) return [missingRow(label, 'ms', `none succeeded${failureNote(cold)}`)];
  return [
    compareRow(`${label}, p50`, 'ms', s.p50, `one cold create alone, p50 of ${a.n}`, a.p50, {
      target: { text: `≤ ${COLD_TARGET_MS / 1000} s`, check: (v) => v <= COLD_TARGET_MS },
      note: `${s.n} answered, the last ${(cold.wallMs / 1000).toFixed(1)} s after the first request; ${settings}`,
    }),
    { figure: `${label}, p90`, value: s.p90, unit: 'ms', pass: null },
    { figure: `${label}, max`, value: s.max, unit: 'ms', pass: null },
    { figure: `${label}: failures`, value: cold.failures.length, unit: 'count', target: '0', pass: cold.failures.length === 0, note: failureNote(cold).slice(2) || undefined },
  ];
}

function warmRows(aloneTimes: number[], warm: Wave, claims: { claims: number; misses: number; fromPool: number }, fillMs: number): Row[] {
  const a = summarize(aloneTimes);
  const s = summarize(warm.times);
  const label = `${CLASS} concurrent creates, WARM_POOL_SIZE=${CLASS} full`;
  const { fromPool } = claims;
  const within = (v: number) => v <= WARM_TARGET_MS;
  if (s.n === 0) return [missingRow(label, 'ms', `none succeeded${failureNote(warm)}`)];
  return [
    compareRow(`${label}, p50`, 'ms', s.p50, 'one claim alone', a.p50, {
      target: { text: `≤ ${WARM_TARGET_MS / 1000} s`, check: within },
      note: `the pool filled in ${(fillMs / 1000).toFixed(0)} s and settled ${SETTLE_MS / 1000} s; the last answer ${(warm.wallMs / 1000).toFixed(2)} s after the first request`,
    }),
    { figure: `${label}, max`, value: s.max, unit: 'ms', target: `≤ ${WARM_TARGET_MS / 1000} s`, pass: within(s.max) && warm.failures.length === 0 },
    {
      figure: `${label}: claimed from the pool`,
      value: fromPool,
      unit: 'count',
      target: `${CLASS} of ${CLASS}`,
      pass: fromPool === CLASS,
      note: `the controller counted ${claims.claims} claims, ${claims.misses} cold fallbacks; ${warm.failures.length} failed${failureNote(warm)}`,
    },
  ];
}
