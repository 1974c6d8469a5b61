import type { Row } from './report.js';

/** What a mode of the bench that runs its own controller (`--density`, `--classroom`) is given. */
export interface ModeOptions {
  log: (message: string) => void;
  /** Runs before the controller starts (builds the images). */
  prepare: () => Promise<void>;
}

/** What such a mode gives back, for run.ts to print and write. */
export interface ModeResult {
  rows: Row[];
  extras: Record<string, unknown>;
  errors: string[];
}
