import { mkdtemp, readdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostDiskFull, SessionDisks } from '../../../../controller/runtime/session-disks.js';

const SIZE = 64 * 1024 ** 2;

describe('SessionDisks: the host floor', () => {
  let dir: string;
  let hostFree: number;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rt-disks-'));
    const stats = await statfs(dir);
    hostFree = stats.bavail * stats.bsize;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('tells the free bytes of the host filesystem, also before the folder exists', async () => {
    const free = await new SessionDisks(join(dir, 'instance', 'not-yet'), SIZE).freeBytes();
    // Other work on the host moves it a little between the two reads.
    expect(Math.abs(free - hostFree)).toBeLessThan(256 * 1024 ** 2);
  });

  it('refuses a new filesystem below the floor and makes nothing', async () => {
    const disks = new SessionDisks(join(dir, 'instance'), SIZE, hostFree + 1024 ** 4);
    const refused = await disks.create('session-a', 0).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(HostDiskFull);
    expect(refused).toMatchObject({ minFreeBytes: hostFree + 1024 ** 4 });
    expect((refused as HostDiskFull).freeBytes).toBeLessThan(hostFree + 1024 ** 4);
    expect(await readdir(join(dir, 'instance'))).toEqual([]);
    expect(await disks.list()).toEqual([]);
  });
});
