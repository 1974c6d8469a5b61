import { realpathSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
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
      // What exists at start is reported before `ready`, and dropped below: a folder added again (see #readAgain)
      // then reports what chokidar had not seen in it.
      ignoreInitial: false,
      // A symlink is reported as an entry of the workspace; where it points (maybe outside) is never watched.
      followSymlinks: false,
      ignored: (path) => IGNORED_INSIDE.test(relative(root, path)) || isWriteTemp(path),
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => {
      const change = CHANGES[event];
      // Before `ready` chokidar reports what already exists: no change of anyone's.
      if (this.#watcher !== watcher || !this.#ready || !change || !path || path === '.') return;
      this.#emit({ ...change, path });
      if (event === 'addDir') void this.#readAgain(watcher, root, path);
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

  // chokidar reads a new folder, then watches it: what is made in it in between (`mkdir -p a/b && echo x > a/b/f`)
  // would never be reported. Added again, the folder is read again once its watch is in place (or right after the
  // read under way), and chokidar reports only what it had not yet: no duplicates, and it watches what it finds.
  async #readAgain(watcher: FSWatcher, root: string, path: string): Promise<void> {
    // A folder already gone is not added: chokidar would then watch its parent for it for good.
    const isFolder = await lstat(join(root, path)).then(
      (stats) => stats.isDirectory(),
      () => false,
    );
    if (isFolder && this.#watcher === watcher) watcher.add(path);
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
