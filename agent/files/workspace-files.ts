import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { AppError } from '../../shared/errors.js';
import type { FileEntry, FileList, FileType } from '../../shared/schemas/files.js';
import { PUBLIC_WORKSPACE, resolveWorkspacePath } from './workspace-path.js';

/** Name prefix of the temporary file a write goes to before its rename; watchers ignore it. */
export const WRITE_TEMP_PREFIX = '.runner-write-';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/** Most entries one listing returns; the rest is reported as `truncated`. */
export const MAX_LIST_ENTRIES = 10_000;
const STAT_BATCH = 64;

export interface Owner {
  uid: number;
  gid: number;
}

/** A regular file of the workspace, open for reading; the caller closes `handle`. */
export interface OpenFile {
  handle: FileHandle;
  stats: Stats;
}

// Learner processes may swap a checked folder for a symbolic link before the agent (root) uses it, so each operation
// re-walks the checked path through descriptors opened with O_NOFOLLOW and names entries through their folder's
// descriptor (/proc/self/fd/N/name resolves like openat(2)): a swap makes it fail, never escape.
const fdPath = (dir: FileHandle): string => `/proc/self/fd/${dir.fd}`;
const at = (dir: FileHandle, name: string): string => `${fdPath(dir)}/${name}`;

/** File operations confined to one workspace folder; new files and folders belong to `owner`. */
export class WorkspaceFiles {
  constructor(
    /** The workspace's real path (realpath'd once). */
    private readonly root: string,
    private readonly owner: Owner,
  ) {}

  async list(requested: string, depth: number): Promise<FileList> {
    const { path, relative } = await this.resolve(requested);
    const { dir } = await this.openFolder(relative);
    const entries: FileEntry[] = [];
    try {
      const truncated = await walk(dir, path, depth, entries);
      return { path, entries, truncated };
    } finally {
      await dir.close();
    }
  }

  /** Opens a regular file for reading; refuses folders, special files and hard links. */
  async open(requested: string): Promise<OpenFile> {
    const { relative } = await this.resolve(requested);
    if (!relative) throw new AppError('IS_A_DIRECTORY', `${PUBLIC_WORKSPACE} is a folder`);
    const [parent, name] = splitLast(relative);
    const { dir } = await this.openFolder(parent);
    let handle: FileHandle;
    try {
      // O_NONBLOCK: opening a FIFO a learner made must not hang the agent.
      handle = await open(at(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK).catch(refuseSpecial);
    } finally {
      await dir.close();
    }
    try {
      const stats = await handle.stat();
      checkRegularFile(stats, requested);
      return { handle, stats };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Writes a whole file through a temporary file and a rename, so nobody ever sees it half written. */
  async write(requested: string, data: Buffer): Promise<{ path: string; created: boolean }> {
    const { path, relative } = await this.resolve(requested);
    if (!relative) throw new AppError('IS_A_DIRECTORY', `${PUBLIC_WORKSPACE} is a folder`);
    const [parent, name] = splitLast(relative);
    const { dir } = await this.openFolder(parent, true);
    try {
      const existing = await lstatIfExists(at(dir, name));
      if (existing) checkRegularFile(existing, requested);
      const temp = `${WRITE_TEMP_PREFIX}${randomBytes(8).toString('hex')}.tmp`;
      const file = await open(at(dir, temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      try {
        await file.writeFile(data);
        // A replaced file keeps its owner and mode (an executable script stays executable); chmod after chown, which clears set-id bits.
        await file.chown(existing?.uid ?? this.owner.uid, existing?.gid ?? this.owner.gid);
        await file.chmod(existing ? existing.mode & 0o7777 : 0o644);
        await rename(at(dir, temp), at(dir, name));
      } catch (error) {
        await unlink(at(dir, temp)).catch(() => undefined);
        throw error;
      } finally {
        await file.close();
      }
      return { path, created: !existing };
    } finally {
      await dir.close();
    }
  }

  /** Deletes a file, a symbolic link (never its target) or a folder with everything in it. */
  async remove(requested: string): Promise<string> {
    const { path, relative } = await this.resolve(requested, false);
    if (!relative) throw new AppError('PERMISSION_DENIED', `${PUBLIC_WORKSPACE} itself cannot be deleted`);
    const [parent, name] = splitLast(relative);
    const { dir } = await this.openFolder(parent);
    try {
      const stats = await lstat(at(dir, name));
      if (stats.isDirectory()) await removeTree(dir, name);
      else await unlink(at(dir, name));
      return path;
    } finally {
      await dir.close();
    }
  }

  /** Creates a folder and its missing parents; `created` is false when it already existed. */
  async mkdir(requested: string): Promise<{ path: string; created: boolean }> {
    const { path, relative } = await this.resolve(requested);
    const { dir, created } = await this.openFolder(relative, true);
    await dir.close();
    return { path, created };
  }

  /** Renames a file, folder or symbolic link (the link itself), creating the target's missing parents. */
  async move(fromRequested: string, toRequested: string, overwrite: boolean): Promise<{ from: string; to: string }> {
    const from = await this.resolve(fromRequested, false);
    const to = await this.resolve(toRequested, false);
    if (!from.relative || !to.relative) {
      throw new AppError('PERMISSION_DENIED', `${PUBLIC_WORKSPACE} itself cannot be moved or replaced`);
    }
    if (to.relative.startsWith(`${from.relative}/`)) {
      throw new AppError('INVALID_PATH', `cannot move ${from.path} into itself`);
    }
    const [fromParent, fromName] = splitLast(from.relative);
    const [toParent, toName] = splitLast(to.relative);
    const { dir: source } = await this.openFolder(fromParent);
    try {
      await lstat(at(source, fromName));
      const { dir: target } = await this.openFolder(toParent, true);
      try {
        if (!overwrite && (await lstatIfExists(at(target, toName)))) {
          throw new AppError('ALREADY_EXISTS', `${to.path} already exists (send overwrite: true to replace it)`);
        }
        await rename(at(source, fromName), at(target, toName));
        return { from: from.path, to: to.path };
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
  }

  /** Checks a client path; `path` is its public spelling, `relative` its symlink-free path inside the workspace. */
  private async resolve(requested: string, followFinal = true): Promise<{ path: string; relative: string }> {
    const { relative } = await resolveWorkspacePath(this.root, requested, { followFinal });
    return { path: posix.resolve(PUBLIC_WORKSPACE, requested), relative };
  }

  /**
   * Opens the folder at `relative` (symlink-free, as resolveWorkspacePath returns it) from the workspace root,
   * one component at a time; with `create`, missing folders are made and given to the owner.
   */
  private async openFolder(relative: string, create = false): Promise<{ dir: FileHandle; created: boolean }> {
    let dir = await open(this.root, DIR_FLAGS);
    let created = false;
    try {
      for (const name of relative ? relative.split('/') : []) {
        created = create && (await mkdir(at(dir, name), 0o755).then(() => true, ignore('EEXIST', false)));
        const next = await openSubfolder(dir, name);
        await dir.close();
        dir = next;
        if (created) await dir.chown(this.owner.uid, this.owner.gid);
      }
      return { dir, created };
    } catch (error) {
      await dir.close();
      throw error;
    }
  }
}

async function walk(dir: FileHandle, path: string, depth: number, entries: FileEntry[]): Promise<boolean> {
  const names = (await readdir(fdPath(dir))).sort();
  for (let start = 0; start < names.length; start += STAT_BATCH) {
    const batch = names.slice(start, start + STAT_BATCH);
    // Concurrent lstat calls keep the thread pool busy; one at a time a large folder takes several times longer.
    const allStats = await Promise.all(batch.map((name) => lstatIfExists(at(dir, name))));
    for (const [index, name] of batch.entries()) {
      if (entries.length >= MAX_LIST_ENTRIES) return true;
      const stats = allStats[index];
      if (!stats) continue; // deleted since readdir
      const entryPath = `${path}/${name}`;
      entries.push(toEntry(name, entryPath, stats));
      if (depth > 1 && stats.isDirectory()) {
        // Replaced by a link or removed since lstat: listed as it was, not entered.
        const child = await open(at(dir, name), DIR_FLAGS).catch(() => undefined);
        if (!child) continue;
        try {
          if (await walk(child, entryPath, depth - 1, entries)) return true;
        } finally {
          await child.close();
        }
      }
    }
  }
  return false;
}

async function removeTree(parent: FileHandle, name: string): Promise<void> {
  const dir = await openSubfolder(parent, name);
  try {
    for (const child of await readdir(fdPath(dir))) {
      const stats = await lstatIfExists(at(dir, child));
      if (stats?.isDirectory()) await removeTree(dir, child);
      else if (stats) await unlink(at(dir, child)).catch(ignore('ENOENT', undefined));
    }
  } finally {
    await dir.close();
  }
  await rmdir(at(parent, name));
}

function toEntry(name: string, path: string, stats: Stats): FileEntry {
  return {
    name,
    path,
    type: typeOf(stats),
    size: stats.size,
    mode: (stats.mode & 0o7777).toString(8).padStart(4, '0'),
    modified: stats.mtime.toISOString(),
  };
}

function typeOf(stats: Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

function checkRegularFile(stats: Stats, requested: string): void {
  if (stats.isDirectory()) throw new AppError('IS_A_DIRECTORY', `${requested} is a folder`);
  if (stats.isSymbolicLink()) throw linkAppeared();
  if (!stats.isFile()) throw new AppError('INVALID_PATH', `${requested} is not a regular file`);
  // A second name could be a learner's hard link to a file outside the workspace: its content is not ours to serve.
  if (stats.nlink > 1) {
    throw new AppError('HARD_LINK_REFUSED', `${requested} has ${stats.nlink} hard links; copy it to a file of its own first`);
  }
}

function splitLast(relative: string): [parent: string, name: string] {
  const slash = relative.lastIndexOf('/');
  return slash < 0 ? ['', relative] : [relative.slice(0, slash), relative.slice(slash + 1)];
}

async function lstatIfExists(path: string): Promise<Stats | undefined> {
  return lstat(path).catch(ignore('ENOENT', undefined));
}

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException)?.code;

function ignore<T>(code: string, value: T): (error: unknown) => T {
  return (error) => {
    if (errnoOf(error) === code) return value;
    throw error;
  };
}

const linkAppeared = (): AppError =>
  new AppError('PATH_OUTSIDE_WORKSPACE', 'a component of the path was replaced by a symbolic link while in use');

// Opens a folder the check saw as a real one; a symbolic link there now was put there since.
async function openSubfolder(dir: FileHandle, name: string): Promise<FileHandle> {
  try {
    return await open(at(dir, name), DIR_FLAGS);
  } catch (error) {
    // O_DIRECTORY | O_NOFOLLOW on a symbolic link fails with ENOTDIR, like a file would: lstat tells them apart.
    const code = errnoOf(error);
    if (code === 'ELOOP' || (code === 'ENOTDIR' && (await lstatIfExists(at(dir, name)))?.isSymbolicLink())) throw linkAppeared();
    throw error;
  }
}

// O_NOFOLLOW on a file fails with ELOOP when it became a symbolic link; a unix socket cannot be opened (ENXIO).
function refuseSpecial(error: unknown): never {
  if (errnoOf(error) === 'ENXIO') throw new AppError('INVALID_PATH', 'not a regular file');
  throw errnoOf(error) === 'ELOOP' ? linkAppeared() : error;
}
