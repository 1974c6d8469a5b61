import type { SessionClient, WatchFrame } from '../../../client/src/index.js';

/**
 * A `/watch` stream of one session held open through the typed client, as an editor holds it: every frame is kept,
 * and `waitFor` resolves once a frame matches (or rejects after its timeout).
 */
export class SessionWatch {
  readonly frames: WatchFrame[] = [];
  readonly #abort = new AbortController();
  #waiters = new Set<{ match: (frame: WatchFrame) => boolean; resolve: () => void }>();
  #ended: string | undefined;

  constructor(readonly session: SessionClient) {
    void this.#read();
  }

  async #read(): Promise<void> {
    try {
      for await (const frame of this.session.watch({ signal: this.#abort.signal })) {
        this.frames.push(frame);
        for (const waiter of this.#waiters) if (waiter.match(frame)) waiter.resolve();
      }
      this.#ended = 'the stream ended';
    } catch (error) {
      this.#ended = (error as Error).message;
    }
  }

  /** Resolves when a frame (already received or still to come) matches; rejects after `timeoutMs`. */
  waitFor(match: (frame: WatchFrame) => boolean, timeoutMs: number): Promise<void> {
    if (this.frames.some(match)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no matching watch frame in ${timeoutMs / 1000} s${this.#ended ? ` (${this.#ended})` : ''}; got ${JSON.stringify(this.frames.slice(-3))}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  close(): void {
    this.#abort.abort();
  }
}
