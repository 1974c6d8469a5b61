import { realpathSync } from 'node:fs';
import { basename, relative } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { FastifyBaseLogger } from 'fastify';
import type { WatchChange, WatchFrame } from '../../shared/schemas/watch.js';
import { WRITE_TEMP_PREFIX } from '../files/workspace-files.js';

export type WatchListener = (frame: WatchFrame) => void;

const CHANGES: Record<string, Pick<WatchChange, 'type' | 'kind'>> = {
  add: { type: 'created', kind: 'file' },
  addDir: { type: 'created', kind: 'directory' },
  change: { type: 'changed', kind: 'file' },
  unlink: { type: 'deleted', kind: 'file' },
  unlinkDir: { type: 'deleted', kind: 'directory' },
};

// The folders themselves are reported, their contents not: an `npm install` or a `git commit` would flood every
// subscriber and use up the system's inotify watches.
const IGNORED_INSIDE = /(^|\/)(node_modules|\.git)\//;
const isWriteTemp = (path: string): boolean => basename(path).startsWith(WRITE_TEMP_PREFIX);

/** One chokidar watcher on the workspace, shared by every subscriber: started by the first, closed after the last. */
export class WorkspaceWatcher {
  #listeners = new Set<WatchListener>();
  #watcher: FSWatcher | undefined;
  #ready = false;

  constructor(
    readonly workspace: string,
    readonly log: FastifyBaseLogger,
  ) {}

  /** Calls `listener` with every change from now on (after a `ready` frame); returns the unsubscribe function. */
  subscribe(listener: WatchListener): () => void {
    this.#listeners.add(listener);
    if (!this.#watcher) this.#start();
    else if (this.#ready) listener({ type: 'ready' });
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) void this.close();
    };
  }

  async close(): Promise<void> {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    this.#ready = false;
    await watcher?.close();
  }

  #start(): void {
    const root = realWorkspace(this.workspace);
    const watcher = watch(root, {
      cwd: root,
      ignoreInitial: true,
      // A symlink is reported as an entry of the workspace; where it points (maybe outside) is never watched.
      followSymlinks: false,
      ignored: (path) => IGNORED_INSIDE.test(relative(root, path)) || isWriteTemp(path),
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => {
      const change = CHANGES[event];
      // Before `ready` chokidar still reports some existing entries (symlinks) despite ignoreInitial.
      if (this.#watcher !== watcher || !this.#ready || !change || !path || path === '.') return;
      this.#emit({ ...change, path });
    });
    watcher.on('ready', () => {
      if (this.#watcher !== watcher) return;
      this.#ready = true;
      this.#emit({ type: 'ready' });
    });
    watcher.on('error', (error) => {
      this.log.warn({ err: error }, 'workspace watcher error');
      // The code only: the message would name the workspace's real path on the host.
      this.#emit({ type: 'error', message: `watching failed: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}` });
    });
  }

  #emit(frame: WatchFrame): void {
    for (const listener of this.#listeners) listener(frame);
  }
}

function realWorkspace(workspace: string): string {
  try {
    return realpathSync(workspace);
  } catch {
    return workspace;
  }
}
