import { execFile } from 'node:child_process';
import { chown, mkdir, open, readdir, readFile, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const IMAGE_SUFFIX = '.img';
// The learner in the session image (uid and gid 1000) owns both folders, as the image's own /workspace and data root.
const LEARNER_ID = 1000;

/** The two folders of one session's filesystem that the session's container bind-mounts. */
export interface SessionDiskFolders {
  workspace: string;
  dockerData: string;
}

/** The host filesystem under the disks folder has less free than a new session filesystem needs. */
export class HostDiskFull extends Error {
  override readonly name = 'HostDiskFull';

  constructor(
    readonly freeBytes: number,
    readonly minFreeBytes: number,
  ) {
    super(`the host has ${freeBytes} bytes free for session filesystems, less than the ${minFreeBytes} a new one needs`);
  }
}

/**
 * One ext4 filesystem per session, in a sparse image file under the controller's state folder, loop-mounted there:
 * its size bounds the workspace and the inner daemon's data together, on any host filesystem and without mount
 * options or quotas. Past it a write fails with ENOSPC inside the session while the host's disk stays untouched.
 * Each is named by a key the caller makes from the session's owner (stable across a claim's rename).
 */
export class SessionDisks {
  constructor(
    private readonly dir: string,
    private readonly sizeBytes: number,
    /** Free space the host filesystem must have before a new one is made (HostDiskFull); 0: no check. */
    private readonly minFreeBytes = 0,
  ) {}

  /**
   * Makes (anew) and mounts `key`'s filesystem; `idOffset` is what a remapped engine adds to a session's ids. Throws
   * HostDiskFull, having made nothing, when the host has less than `minFreeBytes` free: the images are sparse, so the
   * sessions together can promise more than the host holds, and a host that fills up fails every session's writes
   * (their filesystems report I/O errors). A new session is refused instead, while there is still room for the others.
   */
  async create(key: string, idOffset: number): Promise<SessionDiskFolders> {
    await this.remove(key);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const free = await this.freeBytes();
    if (free < this.minFreeBytes) throw new HostDiskFull(free, this.minFreeBytes);
    const image = this.#image(key);
    const file = await open(image, 'wx', 0o600);
    try {
      await file.truncate(this.sizeBytes); // sparse: the host's disk pays only for what is written
    } finally {
      await file.close();
    }
    // -m 0: no blocks held back for root, so the limit is the limit for everyone in the session.
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'nodiscard', image]);
    await this.ensureMounted(key);
    const folders = this.#folders(key);
    // Made on a filesystem nobody else has seen yet: no name here can have been swapped by a learner.
    for (const folder of [folders.workspace, folders.dockerData]) {
      await mkdir(folder, { mode: 0o755 });
      await chown(folder, LEARNER_ID + idOffset, LEARNER_ID + idOffset);
    }
    return folders;
  }

  /** Mounts `key`'s filesystem when it is not (a host reboot unmounts it); its folders. Throws if it has none. */
  async ensureMounted(key: string): Promise<SessionDiskFolders> {
    const mountPoint = this.#mountPoint(key);
    if (!(await isMountPoint(mountPoint))) {
      await mkdir(mountPoint, { recursive: true, mode: 0o700 });
      // `-o loop` attaches a loop device that the kernel detaches again at the unmount.
      await run('mount', ['-o', 'loop', this.#image(key), mountPoint]);
    }
    return this.#folders(key);
  }

  /** Bytes free for root's use on the host filesystem that holds (or will hold, before the first) the images. */
  async freeBytes(): Promise<number> {
    for (let dir = this.dir; ; dir = dirname(dir)) {
      try {
        const stats = await statfs(dir);
        return stats.bavail * stats.bsize;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dir === '/') throw error;
      }
    }
  }

  /** Whether `key` has a filesystem image. */
  async has(key: string): Promise<boolean> {
    return (await this.list()).includes(key);
  }

  /** Unmounts and deletes `key`'s filesystem: its space is free again. Idempotent. */
  async remove(key: string): Promise<void> {
    const mountPoint = this.#mountPoint(key);
    if (await isMountPoint(mountPoint)) {
      // Lazy when still busy (a container being removed): the space is freed once the last user lets go.
      await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
    }
    // Never a recursive delete: the mount point is empty once unmounted, and a learner's files are never walked.
    await rmdir(mountPoint).catch(ignoreMissing);
    await rmdir(join(this.dir, key)).catch(ignoreMissing);
    await rm(this.#image(key), { force: true });
  }

  /** The keys of every filesystem image in the folder. */
  async list(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((name) => name.endsWith(IMAGE_SUFFIX)).map((name) => name.slice(0, -IMAGE_SUFFIX.length));
  }

  /**
   * Bytes in use on `key`'s filesystem, or null when it is not mounted. Asked for every session every few seconds
   * (usage), so mounted is told by the mount point's device differing from its folder's, not by reading the
   * kernel's whole mount table; both are root's folders, never the learner's.
   */
  async usedBytes(key: string): Promise<number | null> {
    const mountPoint = this.#mountPoint(key);
    try {
      const [mounted, folder] = await Promise.all([stat(mountPoint), stat(join(this.dir, checkKey(key)))]);
      if (mounted.dev === folder.dev) return null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const stats = await statfs(mountPoint);
    return (stats.blocks - stats.bfree) * stats.bsize;
  }

  #image(key: string): string {
    return join(this.dir, checkKey(key) + IMAGE_SUFFIX);
  }

  #mountPoint(key: string): string {
    return join(this.dir, checkKey(key), 'mnt');
  }

  #folders(key: string): SessionDiskFolders {
    const mountPoint = this.#mountPoint(key);
    return { workspace: join(mountPoint, 'workspace'), dockerData: join(mountPoint, 'docker') };
  }
}

function checkKey(key: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(key)) throw new Error(`not a valid disk key: ${key}`);
  return key;
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}

/** Whether a path is a mount point, from the kernel's own table (no stat of anything a learner wrote). */
async function isMountPoint(path: string): Promise<boolean> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with spaces and the like escaped as octal.
  return table.split('\n').some((line) => line.split(' ')[4] === path);
}
