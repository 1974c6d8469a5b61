/** Callers waiting for a daemon to become ready, each until its own time limit. */
export class ReadyWaiters {
  readonly #wakers = new Set<() => void>();

  /** Resolves at the next `wakeAll()`; rejects after `timeoutMs` with the message `reason()` gives then. */
  wait(timeoutMs: number, reason: () => string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#wakers.delete(wake);
        reject(new Error(reason()));
      }, timeoutMs);
      this.#wakers.add(wake);
    });
  }

  wakeAll(): void {
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }
}
