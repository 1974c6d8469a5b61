import type { RunnerClient } from '../../../client/src/index.js';

/** What every view of the console is given. */
export interface ConsoleContext {
  client: RunnerClient;
  /** Shows an error in the page's alert banner (a refused token signs out instead). */
  showError(error: unknown): void;
  /** Shows a passing notice in the polite status line. */
  announce(message: string): void;
}

/** A mounted view: stop its timers, streams and sockets when it goes. */
export interface View {
  element: HTMLElement;
  dispose(): void;
}
