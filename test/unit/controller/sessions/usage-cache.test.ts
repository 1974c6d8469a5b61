import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { RuntimeUsage, SessionRuntime } from '../../../../controller/runtime/session-runtime.js';
import { UsageCache } from '../../../../controller/sessions/usage-cache.js';

const MIB = 2 ** 20;
const FIGURES: RuntimeUsage = { memoryBytes: 64 * MIB, memoryLimitBytes: 1536 * MIB, cpuSeconds: 1.23456, pids: 40 };

/** A runtime that reads usage from a table and counts how often it was asked. */
function usageRuntime(options: { diskBytes?: number; walk?: (name: string) => Promise<number | null> } = {}) {
  const reads: string[] = [];
  const walks: string[] = [];
  const runtime = {
    readUsage: vi.fn(async (name: string) => {
      reads.push(name);
      return { ...FIGURES, ...(options.diskBytes === undefined ? {} : { diskBytes: options.diskBytes }) };
    }),
    walkDiskUsage: vi.fn(async (name: string) => {
      walks.push(name);
      return options.walk ? options.walk(name) : 5 * MIB;
    }),
  } as Pick<SessionRuntime, 'readUsage' | 'walkDiskUsage'> as SessionRuntime;
  return { runtime, reads, walks };
}

function cache(runtime: SessionRuntime, clock = { now: 1_000_000 }) {
  return new UsageCache({ runtime, ttlMs: 5_000, diskWalkMs: 60_000, log: pino({ level: 'silent' }), now: () => clock.now });
}

const target = (sessionId: string) => ({ sessionId, containerName: `sess-${sessionId}` });

describe('usage cache', () => {
  it('reads a session once per TTL however often it is asked, and again after', async () => {
    const clock = { now: 1_000_000 };
    const { runtime, reads } = usageRuntime({ diskBytes: 7 * MIB });
    const usage = cache(runtime, clock);
    const first = await usage.of(target('a'));
    expect(first).toEqual({
      memory_bytes: 64 * MIB,
      memory_limit_bytes: 1536 * MIB,
      cpu_seconds: 1.235,
      pids: 40,
      disk_bytes: 7 * MIB,
      measured_at: new Date(1_000_000).toISOString(),
    });
    await Promise.all(Array.from({ length: 50 }, () => usage.of(target('a'))));
    clock.now += 4_999;
    await usage.of(target('a'));
    expect(reads).toEqual(['sess-a']);
    clock.now += 1;
    await usage.of(target('a'));
    expect(reads).toEqual(['sess-a', 'sess-a']);
  });

  it('shares one read among concurrent requests for a session', async () => {
    const { runtime, reads } = usageRuntime({ diskBytes: 0 });
    const usage = cache(runtime);
    await Promise.all([usage.of(target('a')), usage.of(target('a')), usage.all([target('a'), target('b')])]);
    expect(reads.sort()).toEqual(['sess-a', 'sess-b']);
  });

  it('never walks a disk on the request path: null until a background walk finished, then its figure', async () => {
    let finishWalk: (bytes: number) => void = () => {};
    const { runtime, walks } = usageRuntime({ walk: () => new Promise((resolve) => (finishWalk = resolve)) });
    const clock = { now: 1_000_000 };
    const usage = cache(runtime, clock);
    expect((await usage.of(target('a')))?.disk_bytes).toBeNull();
    expect(walks).toEqual(['sess-a']);
    finishWalk(42 * MIB);
    await vi.waitFor(async () => expect((await usage.of(target('a')))?.disk_bytes).toBe(42 * MIB));
    // Past the TTL but within the walk interval: figures read again, the disk not walked again.
    clock.now += 10_000;
    await usage.of(target('a'));
    expect(walks).toEqual(['sess-a']);
    clock.now += 60_000;
    await usage.of(target('a'));
    expect(walks).toEqual(['sess-a', 'sess-a']);
  });

  it('walks one session at a time', async () => {
    let running = 0;
    let most = 0;
    const { runtime, walks } = usageRuntime({
      walk: async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running -= 1;
        return 1;
      },
    });
    const usage = cache(runtime);
    await usage.all(['a', 'b', 'c', 'd'].map(target));
    await vi.waitFor(() => expect(walks).toHaveLength(4));
    await vi.waitFor(async () => expect((await usage.of(target('d')))?.disk_bytes).toBe(1));
    expect(most).toBe(1);
  });

  it('answers null for every session when the runtime does not measure usage (Kubernetes)', async () => {
    const usage = cache({} as SessionRuntime);
    expect(usage.measures).toBe(false);
    expect(await usage.of(target('a'))).toBeNull();
  });

  it('answers null for a session that is not running, and when the engine fails (then asks again only after the TTL)', async () => {
    const clock = { now: 1_000_000 };
    const readUsage = vi.fn<(name: string) => Promise<RuntimeUsage | null>>().mockResolvedValueOnce(null).mockRejectedValueOnce(new Error('engine away'));
    const usage = cache({ readUsage } as Partial<SessionRuntime> as SessionRuntime, clock);
    expect(await usage.of(target('a'))).toBeNull();
    clock.now += 5_000;
    expect(await usage.of(target('a'))).toBeNull();
    expect(await usage.of(target('a'))).toBeNull();
    expect(readUsage).toHaveBeenCalledTimes(2);
  });

  it('reads a session made anew under the same id afresh, and forgets removed sessions', async () => {
    const { runtime, reads } = usageRuntime({ diskBytes: 0 });
    const usage = cache(runtime);
    await usage.of(target('a'));
    await usage.of({ sessionId: 'a', containerName: 'sess-a-pool-member' });
    usage.forget('a');
    await usage.of(target('a'));
    // A scrape forgets sessions that are no longer there.
    await usage.all([target('b')]);
    await usage.of(target('a'));
    expect(reads).toEqual(['sess-a', 'sess-a-pool-member', 'sess-a', 'sess-b', 'sess-a']);
  });
});
