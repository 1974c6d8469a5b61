import type { FastifyBaseLogger } from 'fastify';
import type { AgentConfig } from '../config.js';

/** Owns every terminal (pty) of the agent. Placeholder until the terminal module lands. */
export class TerminalManager {
  constructor(
    readonly config: AgentConfig,
    readonly log: FastifyBaseLogger,
  ) {}

  count(): number {
    return 0;
  }

  async closeAll(): Promise<void> {}
}
