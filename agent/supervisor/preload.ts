import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DaemonClient } from './daemon-client.js';

const TARBALL = /\.(tar|tar\.gz|tgz)$/;

/**
 * Loads every image tarball of `dir` (sorted by name) into the daemon, skipping those already in `loaded`
 * (keyed by path, size and modification time), which it updates. The daemon's data root survives a restart
 * of the daemon, so a restarted daemon does not load them again. A missing folder preloads nothing.
 */
export async function preloadImages(client: DaemonClient, dir: string, loaded: Set<string>): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => TARBALL.test(n)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const messages: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const { size, mtimeMs } = await stat(path);
    const key = `${path}:${size}:${mtimeMs}`;
    if (loaded.has(key)) continue;
    messages.push(...(await client.loadImage(path)));
    loaded.add(key);
  }
  return messages;
}
