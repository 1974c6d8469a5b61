import { setTimeout as sleep } from 'node:timers/promises';
import type { RunnerClient } from '../../../client/src/index.js';
import type { BenchContext } from '../context.js';
import { compareRow, missingRow, type Row } from '../report.js';
import { timed } from '../stats.js';

const FIGURE = 'session create from the warm pool, p50';
const TARGET = '≤ 100 ms';
const POOL_FILL_TIMEOUT_MS = 120_000;
const REFILL_TIMEOUT_MS = 60_000;
// Claims stop after this long even if rounds remain (each waits for the pool to refill: a cold start).
const STAGE_MAX_MS = 240_000;
const POOL_POLL_MS = 100;

/** A sample of the controller's Prometheus text by metric name (labels ignored: these have none). */
export function metric(text: string, name: string): number {
  const value = new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text)?.[1];
  return value === undefined ? Number.NaN : Number(value);
}

/** The controller's /metrics text (not a call of the typed client: the route is for Prometheus). */
export async function scrape(runner: RunnerClient): Promise<string> {
  const answer = await fetch(`${runner.transport.baseUrl}/metrics`, { headers: runner.transport.authHeaders() });
  if (!answer.ok) throw new Error(`GET /metrics: ${answer.status}`);
  return answer.text();
}

/** Waits until the pool holds `size` ready sessions (the `runner_warm_pool_ready` gauge); false on timeout. */
export async function waitPoolFull(runner: RunnerClient, size: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (metric(await scrape(runner), 'runner_warm_pool_ready') >= size) return true;
    await sleep(POOL_POLL_MS);
  }
  return false;
}

/**
 * Restarts the controller with WARM_POOL_SIZE and times `POST /sessions` claims, each once the pool is full again,
 * against the cold figure of the same run. Without a pool in the controller (WARM_POOL_SIZE unknown) the row says so.
 */
export async function measureWarmCreate(ctx: BenchContext, coldP50: number | null): Promise<Row[]> {
  const size = ctx.env.controllerConfig({ WARM_POOL_SIZE: String(ctx.profile.warmPoolSize) }).warmPoolSize;
  if (size === 0) return [missingRow(FIGURE, 'ms', 'n/a (no warm pool)', TARGET)];
  ctx.log(`restarting the controller with WARM_POOL_SIZE=${size}; waiting for the pool to fill`);
  await ctx.restartController({ WARM_POOL_SIZE: String(size) });
  const fillStarted = performance.now();
  let full = await waitPoolFull(ctx.runner, size, POOL_FILL_TIMEOUT_MS);
  const fillMs = performance.now() - fillStarted;
  const before = await scrape(ctx.runner);
  const times: number[] = [];
  const deadline = performance.now() + STAGE_MAX_MS;
  for (let i = 1; i <= ctx.profile.warmRounds && performance.now() < deadline; i++) {
    const id = `warm-${i}`;
    times.push(await timed(() => ctx.runner.createSession({ session_id: id })));
    await ctx.runner.deleteSession(id);
    full = (await waitPoolFull(ctx.runner, size, REFILL_TIMEOUT_MS)) && full;
  }
  const after = await scrape(ctx.runner);
  const delta = (name: string) => metric(after, name) - metric(before, name);
  const claims = delta('runner_warm_pool_claims_total');
  const misses = delta('runner_warm_pool_misses_total');
  const claimMs = (1000 * delta('runner_warm_pool_claim_seconds_sum')) / delta('runner_warm_pool_claim_seconds_count');

  const s = ctx.record('warm_create', { controller: times });
  const notes = [
    `n=${s.controller.n}, pool of ${size} (filled in ${(fillMs / 1000).toFixed(0)} s), p99 ${s.controller.p99.toFixed(0)} ms`,
    `${claims} claims, ${misses} cold fallbacks; the controller's own claim step ${claimMs.toFixed(0)} ms mean`,
  ];
  if (!full) notes.push('the pool was not full again before every claim (slow refill)');
  const note = notes.join('; ');
  const target = { text: TARGET, check: (v: number) => v <= 100 };
  if (coldP50 === null) return [{ figure: FIGURE, value: s.controller.p50, unit: 'ms', target: TARGET, pass: s.controller.p50 <= 100, note }];
  return [compareRow(FIGURE, 'ms', s.controller.p50, 'cold create p50 (this run)', coldP50, { target, note })];
}
