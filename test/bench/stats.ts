import { setTimeout as sleep } from 'node:timers/promises';

/** Percentiles and the like of one method's timings, in milliseconds. */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** Milliseconds `fn` took. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export interface InterleaveOptions {
  /** Untimed rounds first (connections opened, code paths warmed up). */
  warmup: number;
  rounds: number;
  /** The loop stops after this long even if rounds remain. */
  maxMs: number;
  /** Runs between rounds, untimed (e.g. to clear a terminal line). */
  between?: (round: number) => Promise<void>;
  /**
   * A pause after every call, untimed: for methods that leave the machine busy after they return (a `docker exec`'s
   * after-work in the engine), so that no call is timed while an earlier one's after-work still runs.
   */
  settleMs?: number;
}

/** A small seeded generator (mulberry32): the same orders in every run, so runs compare. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Runs every method once per round, in a shuffled order, and returns each one's timings: methods compared with each
 * other see the same machine load (which matters on a 2-core machine shared with other work), and none always runs
 * right after the same other one (a `docker exec` leaves the engine busy for a moment after it returns).
 */
export async function interleave<K extends string>(methods: Record<K, () => Promise<unknown>>, options: InterleaveOptions): Promise<Record<K, number[]>> {
  const names = Object.keys(methods) as K[];
  const timings = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < options.warmup; round++) {
    for (const name of names) await methods[name]();
    await options.between?.(round);
  }
  const random = randomSource(names.length * 7919 + options.rounds);
  const deadline = performance.now() + options.maxMs;
  for (let round = 0; round < options.rounds && performance.now() < deadline; round++) {
    for (const name of shuffled(names, random)) {
      timings[name].push(await timed(methods[name]));
      if (options.settleMs) await sleep(options.settleMs);
    }
    await options.between?.(round);
  }
  return timings;
}
