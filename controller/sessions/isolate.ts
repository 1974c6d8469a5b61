import type { FastifyBaseLogger } from 'fastify';

/** Runs one step of a sweep over many sessions: its failure is logged and never stops the steps after it. */
export async function isolate(log: FastifyBaseLogger, about: Record<string, unknown>, what: string, step: () => Promise<unknown>): Promise<void> {
  try {
    await step();
  } catch (err) {
    log.warn({ err, ...about }, `could not ${what}`);
  }
}
