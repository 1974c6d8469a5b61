import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it returns a value (not undefined) or the time is up, then fails naming `what`. For code
 * that also runs outside vitest (the bench); inside a test, `vi.waitFor` does the same.
 */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}${last ? `: ${String(last)}` : ''}`);
}
