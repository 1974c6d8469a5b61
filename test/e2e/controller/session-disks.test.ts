import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionDisks } from '../../../controller/runtime/session-disks.js';

/*
 * A session's own filesystem, made, filled, re-mounted and removed for real (loop devices need root, as the
 * controller runs). No Docker: the hardening suite drives the same through sessions.
 */

const run = promisify(execFile);
const SIZE = 64 * 1024 ** 2;

async function isMounted(path: string): Promise<boolean> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((line) => line.split(' ')[4] === path);
}

describe.sequential("a session's own filesystem", () => {
  let dir = '';
  let disks: SessionDisks;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rt-disks-'));
    disks = new SessionDisks(dir, SIZE);
  });
  afterEach(async () => {
    for (const key of await disks.list()) await disks.remove(key);
    await rm(dir, { recursive: true, force: true });
  });

  it('fails a write past its size with ENOSPC, works again once files are removed, and frees everything on removal', async () => {
    const hostFreeBefore = (await run('df', ['--output=avail', '-B1', dir])).stdout;
    const { workspace, dockerData } = await disks.create('session-a', 0);
    expect((await stat(workspace)).uid).toBe(1000);
    expect((await stat(dockerData)).uid).toBe(1000);
    // The image is sparse: the host pays for what is written, not for the size.
    expect((await stat(join(dir, 'session-a.img'))).blocks * 512).toBeLessThan(SIZE / 2);

    const filled = await run('dd', ['if=/dev/zero', `of=${join(workspace, 'big')}`, 'bs=1M', 'count=200']).then(
      () => 'no error',
      (error: { stderr: string }) => error.stderr,
    );
    expect(filled).toMatch(/No space left on device/);
    expect(await disks.usedBytes('session-a')).toBeGreaterThan(SIZE * 0.8);
    await expect(writeFile(join(dockerData, 'more'), Buffer.alloc(1024 * 1024))).rejects.toMatchObject({ code: 'ENOSPC' });

    await rm(join(workspace, 'big'));
    await writeFile(join(workspace, 'after'), 'works again');
    expect(await readFile(join(workspace, 'after'), 'utf8')).toBe('works again');

    await disks.remove('session-a');
    expect(await isMounted(join(dir, 'session-a', 'mnt'))).toBe(false);
    await expect(stat(join(dir, 'session-a.img'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await disks.list()).toEqual([]);
    // Nothing of the 200 MB written landed on the host's own disk.
    const hostFreeAfter = (await run('df', ['--output=avail', '-B1', dir])).stdout;
    expect(Math.abs(Number(hostFreeAfter.split('\n')[1]) - Number(hostFreeBefore.split('\n')[1]))).toBeLessThan(SIZE);
  });

  it('mounts a filesystem again when its mount is gone (a host reboot), with its files', async () => {
    const { workspace } = await disks.create('session-b', 100_000);
    expect((await stat(workspace)).uid).toBe(101_000);
    await writeFile(join(workspace, 'kept'), 'still here');
    await run('umount', [join(dir, 'session-b', 'mnt')]);
    expect(await disks.usedBytes('session-b')).toBeNull();

    const again = await disks.ensureMounted('session-b');
    expect(await readFile(join(again.workspace, 'kept'), 'utf8')).toBe('still here');
    expect(await disks.list()).toEqual(['session-b']);
  });

  it('refuses a key that is not a plain name', async () => {
    await expect(disks.create('../escape', 0)).rejects.toThrow(/not a valid disk key/);
  });
});
