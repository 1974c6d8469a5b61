import type { FastifyBaseLogger } from 'fastify';
import type { AgentConfig } from '../config.js';
import type { DaemonHealth } from '../../shared/schemas/health.js';
import type { DaemonMonitor } from './daemon-monitor.js';

/** Starts and keeps alive the rootless dockerd of a session. Placeholder until the supervisor module lands. */
export class DockerdSupervisor implements DaemonMonitor {
  constructor(
    readonly config: AgentConfig,
    readonly log: FastifyBaseLogger,
  ) {
    throw new Error('dockerd supervision is not implemented yet');
  }

  health(): DaemonHealth {
    throw new Error('not implemented');
  }

  async waitReady(): Promise<void> {}

  async close(): Promise<void> {}
}
