import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { probeAgentHealth } from '../../../controller/sessions/agent-probe.js';
import { SessionStore } from '../../../controller/sessions/session-store.js';
import type { ControllerConfig } from '../../../controller/config.js';
import type { BenchContext } from '../context.js';
import { compareRow, missingRow, type Row } from '../report.js';
import { timed } from '../stats.js';

const FIGURE = 'session create from the warm pool, p50';
const TARGET = '≤ 100 ms';
const POOL_FILL_TIMEOUT_MS = 180_000;
const POOL_POLL_MS = 250;
// A pool gauge by any name a controller might give it: what counts is ready (idle, available) pool sessions.
const POOL_METRIC = /^(\w*(?:warm|pool)\w*(?:ready|idle|available|free)\w*)(?:\{[^}]*\})?\s+([\d.e+-]+)$/im;

/** The pool size the controller would run with WARM_POOL_SIZE=size, or 0 when it has no warm pool (yet). */
export function warmPoolSize(ctx: BenchContext, size: number): number {
  let config: ControllerConfig;
  try {
    config = ctx.env.controllerConfig({ WARM_POOL_SIZE: String(size) });
  } catch (error) {
    throw new Error(`the controller refuses WARM_POOL_SIZE=${size}: ${(error as Error).message}`);
  }
  const setting = Object.entries(config).find(([key, value]) => /warm/i.test(key) && typeof value === 'number');
  return typeof setting?.[1] === 'number' ? setting[1] : 0;
}

/**
 * Restarts the controller with a warm pool and times `POST /sessions` claims, each after the pool is full again,
 * against the cold figure of the same run. Without a pool in the controller the row says so.
 */
export async function measureWarmCreate(ctx: BenchContext, coldP50: number | null): Promise<Row[]> {
  const size = warmPoolSize(ctx, ctx.profile.warmPoolSize);
  if (size === 0) return [missingRow(FIGURE, 'ms', 'n/a (no warm pool)', TARGET)];
  ctx.log(`restarting the controller with WARM_POOL_SIZE=${size}`);
  await ctx.restartController({ WARM_POOL_SIZE: String(size) });
  let full = await waitPoolFull(ctx, size);
  const times: number[] = [];
  for (let i = 1; i <= ctx.profile.warmRounds; i++) {
    const id = `warm-${i}`;
    times.push(await timed(() => ctx.api.createSession(id)));
    await ctx.api.deleteSession(id);
    full = (await waitPoolFull(ctx, size)) && full;
  }
  const s = ctx.record('warm_create', { controller: times });
  const slow = times.filter((t) => coldP50 !== null && t > coldP50 / 2).length;
  const notes = [`n=${s.controller.n}, pool of ${size}, p99 ${s.controller.p99.toFixed(0)} ms`];
  if (slow > 0) notes.push(`${slow} claims took over half a cold create (a cold fallback?)`);
  if (!full) notes.push(`the pool was not seen full within ${POOL_FILL_TIMEOUT_MS / 1000} s before every claim`);
  const target = { text: TARGET, check: (v: number) => v <= 100 };
  if (coldP50 === null) return [{ figure: FIGURE, value: s.controller.p50, unit: 'ms', target: TARGET, pass: s.controller.p50 <= 100, note: notes.join('; ') }];
  return [compareRow(FIGURE, 'ms', s.controller.p50, 'cold create p50 (this run)', coldP50, { target, note: notes.join('; ') })];
}

/**
 * Waits until the pool holds `size` ready sessions: by a pool gauge in /metrics when the controller has one, else by
 * counting session folders that belong to no listed session and whose agent reports its inner daemon ready.
 */
async function waitPoolFull(ctx: BenchContext, size: number): Promise<boolean> {
  const deadline = performance.now() + POOL_FILL_TIMEOUT_MS;
  const store = new SessionStore(ctx.env.socketsDir, ctx.env.instance);
  while (performance.now() < deadline) {
    const metrics = await ctx.api.http.send('GET', '/metrics', {}).then((a) => a.body.toString('utf8'), () => '');
    const gauge = POOL_METRIC.exec(metrics);
    if (gauge) {
      if (Number(gauge[2]) >= size) return true;
    } else {
      const claimed = new Set((await ctx.api.listSessions()).sessions.map((s) => s.session_id));
      const folders = (await readdir(ctx.env.socketsDir).catch(() => [] as string[])).filter((name) => !claimed.has(name));
      let ready = 0;
      for (const folder of folders) {
        const token = await store.readToken(folder);
        const health = token ? await probeAgentHealth(store.agentSocketPath(folder), token) : null;
        if (health?.status === 'healthy' && health.daemon.ready) ready += 1;
      }
      if (ready >= size) return true;
    }
    await sleep(POOL_POLL_MS);
  }
  return false;
}
