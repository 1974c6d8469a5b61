import { Agent, Pool, type Dispatcher } from 'undici';
import { agentOrigin, endpointKey, type AgentEndpoint } from './agent-target.js';

// How much of an upload may wait for a slow upstream before the client's request is paused: well above one 64 KiB
// read, so a fast upstream never makes the proxy pause and resume the upload chunk by chunk.
const CONNECT = { timeout: 5_000, highWaterMark: 1024 * 1024 };

interface SocketPool {
  pool: Pool;
  used: boolean;
}

/**
 * The proxy's upstream connections: one keep-alive pool per agent (socket or TCP), reused by every request to that session,
 * and one dispatcher for ports published inside sessions. Pools idle for a whole sweep interval are closed.
 */
export class Upstreams {
  readonly #sockets = new Map<string, SocketPool>();
  readonly #ports = new Agent({ connect: CONNECT });
  readonly #sweep: NodeJS.Timeout;

  constructor(idleMs = 60_000) {
    this.#sweep = setInterval(() => this.#closeIdle(), idleMs).unref();
  }

  /** The pool of connections to the agent at this endpoint. */
  agent(endpoint: AgentEndpoint): Dispatcher {
    const key = endpointKey(endpoint);
    let entry = this.#sockets.get(key);
    if (entry === undefined) {
      // Over a socket the origin only fills the Host header; the socket path decides where the request goes.
      const options = endpoint.kind === 'unix' ? { socketPath: endpoint.socketPath, connect: CONNECT } : { connect: CONNECT };
      entry = { pool: new Pool(agentOrigin(endpoint), options), used: true };
      this.#sockets.set(key, entry);
    }
    entry.used = true;
    return entry.pool;
  }

  /** The dispatcher for `http://<session ip>:<port>` origins. */
  get ports(): Dispatcher {
    return this.#ports;
  }

  /** How many agents have an open pool (for tests and metrics). */
  get openPools(): number {
    return this.#sockets.size;
  }

  #closeIdle(): void {
    for (const [key, entry] of this.#sockets) {
      if (entry.used || entry.pool.stats.size > 0) {
        entry.used = false;
        continue;
      }
      this.#sockets.delete(key);
      void entry.pool.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    const pools = [...this.#sockets.values()].map((entry) => entry.pool.destroy());
    this.#sockets.clear();
    await Promise.allSettled([...pools, this.#ports.destroy()]);
  }
}
