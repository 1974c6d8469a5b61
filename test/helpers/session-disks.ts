import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The mount points below `dir`, deepest first, from the kernel's own table. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((path) => path.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts every session filesystem a test controller left in `dir` (SESSION_DISK_DIR), then removes the folder. */
export async function removeSessionDisks(dir: string): Promise<void> {
  for (const mountPoint of await mountsUnder(dir)) await run('umount', ['-l', mountPoint]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
