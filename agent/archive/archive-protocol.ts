/*
 * What the agent and its extraction worker (archive-worker.ts) say to each other; a module of its own so that the
 * agent never loads the worker, whose module runs it.
 */

/** The worker's request, its argv[2] as JSON; the archive itself comes on stdin. */
export interface ArchiveRequest {
  op: 'extract';
  dir: string;
  maxBytes: number;
  maxEntries: number;
}

/** Exit code of a refused archive; stderr's last line is then `{code, message}`. */
export const REFUSED_EXIT_CODE = 2;
