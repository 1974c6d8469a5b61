import { setFlagsFromString } from 'node:v8';

/**
 * Gives back what only the agent's start needed, once the session is ready (idle memory, issue 18). Without it an
 * idle agent keeps it for good: it allocates too little for V8 to ever collect on its own.
 * - The start's garbage (the preload stream's buffers above all, ~2 MiB): one full collection.
 * - The bytecode of every function the start ran (parsing the config, building the routes, starting dockerd), about
 *   1 MiB: V8 flushes bytecode that has not run for a while, but it ages it only in the collections it starts
 *   itself, which an idle agent never needs, and never in a forced one (gc()). Stress flushing, for this one
 *   collection, flushes all bytecode not on the stack: what runs again (an exec's path) is compiled again from the
 *   source on first use, a few milliseconds once.
 * The image starts the agent with --expose-gc for it; without gc() (tests, outside the image) it does nothing.
 */
export function releaseStartUpMemory(): void {
  const collect = globalThis.gc;
  if (!collect) return;
  setFlagsFromString('--stress-flush-code');
  try {
    collect();
  } finally {
    setFlagsFromString('--no-stress-flush-code');
  }
}
