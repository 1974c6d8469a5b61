import type Docker from 'dockerode';
import type { DaemonHealth } from '../../shared/schemas/health.js';
import { ReadyWaiters } from './ready-waiters.js';

/** What the rest of the agent knows about the Docker daemon it works with. */
export interface DaemonMonitor {
  health(): DaemonHealth;
  /** Resolves once the daemon answers `/_ping` (or rejects after `timeoutMs`). */
  waitReady(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const PROBE_INTERVAL_MS = 2_000;

/** Watches a daemon the agent was given but does not supervise: pings it now and then. */
export class ExternalDaemonMonitor implements DaemonMonitor {
  #state: DaemonHealth = { ready: false, version: null, rootless: null, supervised: false, restarts: 0, last_error: null };
  #timer: NodeJS.Timeout;
  readonly #waiters = new ReadyWaiters();

  constructor(private readonly docker: Docker) {
    void this.#probe();
    this.#timer = setInterval(() => void this.#probe(), PROBE_INTERVAL_MS);
    this.#timer.unref();
  }

  health(): DaemonHealth {
    return this.#state;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    if (this.#state.ready) return;
    await this.#waiters.wait(timeoutMs, () => 'docker daemon not ready');
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
  }

  async #probe(): Promise<void> {
    try {
      await this.docker.ping();
      if (!this.#state.ready || this.#state.version === null) {
        const info = await this.docker.info();
        const rootless = (info.SecurityOptions as string[] | undefined)?.some((o) => o.includes('rootless')) ?? false;
        this.#state = { ...this.#state, ready: true, version: info.ServerVersion ?? null, rootless, last_error: null };
      }
      this.#waiters.wakeAll();
    } catch (error) {
      this.#state = { ...this.#state, ready: false, last_error: (error as Error).message };
    }
  }
}
