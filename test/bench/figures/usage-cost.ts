import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionInfo } from '../../../client/src/index.js';
import type { BenchContext } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { timed } from '../stats.js';

// Past the TTL by this much, so that every session's figures are read again.
const PAST_TTL_MS = 150;

/**
 * What collecting usage costs: `GET /sessions` over the sessions that run, once every cached figure has expired
 * (a read of each session's cgroup files) and right after (all from the cache). The cached one always follows the
 * expired one, so the two are paired round by round rather than shuffled; each answer is checked to be what it
 * claims (a fresh `measured_at` after expiry, the same one from the cache).
 */
export async function measureUsageCost(ctx: BenchContext): Promise<Row[]> {
  const ttlMs = ctx.env.controller.config.usageTtlSeconds * 1000;
  const list = () => ctx.runner.listSessions();
  const count = (await list()).length;
  const expired: number[] = [];
  const cached: number[] = [];
  let previous = new Map<string, string | undefined>();
  for (let round = 0; round < ctx.profile.usageRounds; round++) {
    await sleep(ttlMs + PAST_TTL_MS);
    let fresh: SessionInfo[] = [];
    expired.push(await timed(async () => (fresh = await list())));
    let again: SessionInfo[] = [];
    cached.push(await timed(async () => (again = await list())));
    const readAt = new Map(fresh.map((s) => [s.session_id, s.usage?.measured_at]));
    for (const s of fresh) {
      if (!s.usage) throw new Error(`session ${s.session_id} reports no usage`);
      if (s.usage.measured_at === previous.get(s.session_id)) throw new Error(`session ${s.session_id}: usage not read again after the TTL`);
    }
    for (const s of again) if (s.usage?.measured_at !== readAt.get(s.session_id)) throw new Error(`session ${s.session_id}: usage not served from the cache`);
    previous = readAt;
  }
  const s = ctx.record('usage_cost', { expired, cached });
  const perSession = (s.expired.p50 - s.cached.p50) / count;
  return [
    compareRow(`GET /sessions with ${count} sessions, usage expired (cgroups read), p50`, 'ms', s.expired.p50, 'the same, usage cached', s.cached.p50, {
      by: 'delta',
      note:
        `n=${s.expired.n} pairs; about ${perSession.toFixed(2)} ms per session once per USAGE_TTL_SECONDS; ` +
        `the bench's controller runs with USAGE_TTL_SECONDS=${ttlMs / 1000} so that a cache expires within the figure`,
    }),
  ];
}
