import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const REPO = new URL('../../..', import.meta.url).pathname;

// A process of its own: what V8 holds, and its flags, are per process. It runs 300 functions (their bytecode stands
// for the start's), releases, and runs them again: they must still give the same answers.
const PROBE = `
import { getHeapCodeStatistics } from 'node:v8';
import { releaseStartUpMemory } from './agent/start-up-memory.ts';
const fns = Array.from({ length: 300 }, (_, i) => new Function('a',
  'let s = ' + i + '; for (const x of a) { s += x * ' + i + ' + (x % 7); if (s > 1e9) s = s / 3; } return s;'));
const run = () => fns.map((f) => f([1, 2, 3])).join(',');
const answers = run();
const before = getHeapCodeStatistics().bytecode_and_metadata_size;
releaseStartUpMemory();
const after = getHeapCodeStatistics().bytecode_and_metadata_size;
console.log(JSON.stringify({ before, after, same: run() === answers }));
`;

async function probe(nodeArgs: string[]): Promise<{ before: number; after: number; same: boolean }> {
  const args = [...nodeArgs, '--import', 'tsx', '--input-type=module', '-e', PROBE];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: REPO });
  return JSON.parse(stdout) as { before: number; after: number; same: boolean };
}

describe('releaseStartUpMemory (what only the agent start needed)', () => {
  it('flushes the bytecode of functions that ran, and they still run right after', async () => {
    const { before, after, same } = await probe(['--expose-gc']);
    // A plain gc() keeps all of it (V8 ages bytecode only in collections it starts itself); the flush drops most.
    expect(after).toBeLessThan(before / 2);
    expect(same).toBe(true);
  });

  it('does nothing without --expose-gc (the image sets it; tests and a plain `npm run agent` do not)', async () => {
    const { before, after, same } = await probe([]);
    expect(after).toBeGreaterThanOrEqual(before * 0.9);
    expect(same).toBe(true);
  });
});
