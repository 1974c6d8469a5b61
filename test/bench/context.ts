import type Docker from 'dockerode';
import type { RunnerClient, SessionClient } from '../../client/src/index.js';
import { SessionStore } from '../../controller/sessions/session-store.js';
import { AgentApi, benchClient } from './agent-api.js';
import type { BenchEnv } from './bench-env.js';
import type { Profile } from './profile.js';
import { summarize, type Summary } from './stats.js';

/** What every figure gets: the run's profile, resources, the typed client of the running controller and the sample store. */
export class BenchContext {
  readonly samples: Record<string, Record<string, Summary>> = {};
  /** Other measurements worth keeping in the JSON (memory by process, raw per-session figures). */
  readonly extras: Record<string, unknown> = {};
  #client: ReturnType<typeof benchClient>;

  constructor(
    readonly profile: Profile,
    readonly env: BenchEnv,
    controllerUrl: string,
    readonly log: (message: string) => void,
  ) {
    this.#client = benchClient(controllerUrl);
  }

  /** The controller's API, as a backend drives it. */
  get runner(): RunnerClient {
    return this.#client.runner;
  }

  /** Closes the client's connections. */
  close(): Promise<void> {
    return this.#client.close();
  }

  /** Keeps each method's summary for the JSON report and returns them. */
  record<K extends string>(figure: string, timings: Record<K, number[]>): Record<K, Summary> {
    const summaries = Object.fromEntries(Object.entries<number[]>(timings).map(([name, values]) => [name, summarize(values)])) as Record<K, Summary>;
    this.samples[figure] = summaries;
    return summaries;
  }

  /** Runs `fn` and returns its result with the CPU time the controller process spent meanwhile (ms). */
  async withControllerCpu<T>(fn: () => Promise<T>): Promise<{ result: T; cpuMs: number }> {
    const before = await this.env.controller.cpuMs();
    const result = await fn();
    return { result, cpuMs: (await this.env.controller.cpuMs()) - before };
  }

  /**
   * The controller's CPU time per call of `fn` (ms), over `count` calls back to back: interleaved with other work the
   * figure grows with every context switch, so it is taken apart from the timed rounds.
   */
  async controllerCpuPerCall(fn: () => Promise<unknown>, count: number): Promise<number> {
    const { cpuMs } = await this.withControllerCpu(async () => {
      for (let i = 0; i < count; i++) await fn();
    });
    return cpuMs / count;
  }

  /** Stops the controller (its sessions keep running) and starts it again with `extra` in its environment. */
  async restartController(extra: Record<string, string> = {}): Promise<void> {
    await this.close();
    const controller = await this.env.startController(extra);
    this.#client = benchClient(controller.url);
  }

  /** Creates a session through the controller and opens both ways to its agent. */
  async openSession(sessionId: string): Promise<BenchSession> {
    const { container_name: containerName } = await this.runner.createSession({ session_id: sessionId });
    const store = new SessionStore(this.env.socketsDir, this.env.instance);
    const token = await store.readToken({ kind: 'session', sessionId });
    if (!token) throw new Error(`no agent token for session ${sessionId}`);
    return {
      id: sessionId,
      containerName,
      container: this.env.docker.getContainer(containerName),
      viaController: this.runner.session(sessionId),
      direct: AgentApi.direct(store.agentSocketPath({ kind: 'session', sessionId }), token),
      agentSocket: store.agentSocketPath({ kind: 'session', sessionId }),
      token,
    };
  }
}

/** A session the bench made, reachable through the controller and directly. */
export interface BenchSession {
  id: string;
  containerName: string;
  container: Docker.Container;
  /** Through the controller, with the typed client. */
  viaController: SessionClient;
  /** Direct to the agent's socket (the client addresses the controller only). */
  direct: AgentApi;
  agentSocket: string;
  token: string;
}
