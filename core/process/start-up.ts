import closeWithGrace from 'close-with-grace';
import type { Logger } from 'pino';
import { ConfigError } from './config-error.js';

// How long a graceful close may take before the process exits anyway.
const CLOSE_GRACE_MS = 10_000;

/** Reads the process's configuration; a bad one ends the process with one line `<name>: message` and exit code 2. */
export function readConfigOrExit<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    return process.exit(2);
  }
}

/** On SIGINT, SIGTERM or a crash: logs why, then runs `close` (the process exits when it is done or overdue). */
export function closeOnSignals(name: string, log: Logger, close: () => Promise<void>): void {
  closeWithGrace({ delay: CLOSE_GRACE_MS }, async ({ signal, err }) => {
    if (err) log.error({ err }, `${name} crashed`);
    log.info({ signal }, `${name} shutting down`);
    await close();
  });
}
