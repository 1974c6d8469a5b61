import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

export interface OpenFolderOptions {
  /** Mode of the last folder when it has to be made; missing parents get 0755. Without it a missing folder fails. */
  createMode?: number;
}

/**
 * Opens the folder at the absolute `path` one component at a time from `/`, each through its parent's descriptor
 * with O_NOFOLLOW (/proc/self/fd/N/name resolves like openat(2)). A symbolic link anywhere on the way, even one
 * swapped in while this walks, fails with ELOOP or ENOTDIR instead of being followed, so what root then does to the
 * returned descriptor (fchown, fchmod) lands on this folder and nowhere else.
 */
export async function openFolderNoFollow(path: string, options: OpenFolderOptions = {}): Promise<FileHandle> {
  if (!path.startsWith('/')) throw new Error(`${path} is not an absolute path`);
  const names = path.split('/').filter((name) => name !== '' && name !== '.');
  if (names.includes('..')) throw new Error(`${path} must not contain ..`);
  return walkFoldersNoFollow(await open('/', DIR_FLAGS), names, options);
}

/**
 * Walks from the open folder `start` down `names` (each one plain name), the same way: through each parent's
 * descriptor with O_NOFOLLOW, making missing folders when `createMode` is given. `start` is closed either way.
 */
export async function walkFoldersNoFollow(start: FileHandle, names: readonly string[], options: OpenFolderOptions = {}): Promise<FileHandle> {
  let dir = start;
  try {
    for (const [index, name] of names.entries()) {
      const child = `/proc/self/fd/${dir.fd}/${name}`;
      const last = index === names.length - 1;
      if (options.createMode !== undefined) {
        await mkdir(child, { mode: last ? options.createMode : 0o755 }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
      }
      const next = await open(child, DIR_FLAGS);
      await dir.close();
      dir = next;
    }
    return dir;
  } catch (error) {
    await dir.close();
    throw error;
  }
}
