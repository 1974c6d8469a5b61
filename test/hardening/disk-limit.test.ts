import { execFile } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { mountsUnder, removeSessionDisks } from '../helpers/session-disks.js';
import { dockerExec } from '../helpers/docker-exec.js';
import { waitUntil } from '../helpers/wait-until.js';
import { runnerError } from '../helpers/runner-error.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * A learner fills the disk: the workspace and the inner daemon's data share one filesystem of SESSION_DISK_LIMIT
 * that the controller made for the session. Past it writes fail inside, the API says 507 NO_SPACE, the host's own
 * disk does not notice, the session works again once files are removed, and deleting the session frees it all.
 * The images are sparse, so together they may promise more than the host holds: below SESSION_DISK_MIN_FREE free on
 * the host a new session is refused (507 HOST_DISK_FULL) before anything is made.
 */

const run = promisify(execFile);
const ID = 'disk';
const LIMIT_MB = 512;

async function hostFreeBytes(): Promise<number> {
  const { stdout } = await run('df', ['--output=avail', '-B1', '/var/lib']);
  return Number(stdout.trim().split('\n')[1]);
}

describe.sequential('disk limit per session', () => {
  const diskDir = `/tmp/rthard-disks-${process.pid}`;
  const ctl = hardeningController({ env: { SESSION_DISK_LIMIT: `${LIMIT_MB}m`, SESSION_DISK_DIR: diskDir } });

  beforeAll(async () => {
    await buildImages();
    await sweepHardeningLeftovers();
    await ctl.start();
    await ctl.createSession(ID);
  });

  afterAll(async () => {
    await ctl.destroy();
    await removeSessionDisks(diskDir);
  });

  it('gives /workspace and the inner daemon one filesystem of the limit', async () => {
    // One df per folder: given both, df names a shared filesystem once.
    const df = await ctl.exec(ID, `for d in /workspace /home/learner/.local/share/docker; do df -B1M --output=size "$d" | tail -n 1; done`);
    const sizes = (df.logs.join('\n').match(/\d+/g) ?? []).map(Number);
    expect(sizes).toHaveLength(2);
    for (const size of sizes) {
      expect(size).toBeGreaterThan(LIMIT_MB * 0.9);
      expect(size).toBeLessThanOrEqual(LIMIT_MB);
    }
  });

  it('fails writes past the limit with ENOSPC inside and 507 NO_SPACE from the API, and the host does not notice', async () => {
    const before = await hostFreeBytes();
    const filled = await ctl.exec(ID, `dd if=/dev/zero of=/workspace/big bs=1M count=${LIMIT_MB * 2} 2>&1`, { timeoutSeconds: 120 });
    expect(filled.exit_code).not.toBe(0);
    expect(filled.logs.join('')).toMatch(/No space left on device/);
    // The inner daemon's data is on the same filesystem: it is full too.
    const inner = await ctl.exec(ID, 'dd if=/dev/zero of=/home/learner/.local/share/docker/more bs=1M count=8 2>&1', { timeoutSeconds: 60 });
    expect(inner.logs.join('')).toMatch(/No space left on device/);

    const put = await runnerError(ctl.client.session(ID).writeFile('/workspace/more.txt', 'x'.repeat(4 * 1024 * 1024)));
    expect(put).toMatchObject({ status: 507, code: 'NO_SPACE' });
    // Twice the limit was asked for; the host lost at most the limit (and other work on the host moves it a little).
    expect(before - (await hostFreeBytes())).toBeLessThan(LIMIT_MB * 1024 * 1024 * 1.2);
  });

  it('works again once files are removed, inner containers included', async () => {
    await ctl.exec(ID, 'rm -f /workspace/big /home/learner/.local/share/docker/more');
    expect(await ctl.client.session(ID).writeFile('/workspace/after.txt', 'room again')).toEqual({ path: '/workspace/after.txt', size: 10 });
    expect(ctl.lastResponse().status).toBe(201);
    const inner = await ctl.exec(ID, ['docker', 'run', '--rm', 'runner-busybox:latest', 'echo', 'inner ok'], { timeoutSeconds: 180 });
    expect(inner.logs.join('')).toContain('inner ok');
  });

  it('keeps the limit over a controller restart, and mounts a lost filesystem again before starting a stopped session', async () => {
    await ctl.restart('SIGKILL');
    expect(await ctl.client.session(ID).readFile('/workspace/after.txt')).toMatchObject({ content: 'room again' });

    // A host reboot, as far as the session sees it: the container stops and the mount is gone.
    await ctl.stop('SIGKILL');
    await ctl.docker.getContainer(ctl.containerName(ID)).stop({ t: 5 });
    for (const mountPoint of await mountsUnder(diskDir)) await run('umount', [mountPoint]);
    expect(await mountsUnder(diskDir)).toEqual([]);
    await ctl.start();
    await waitUntil('the session answers again', async () => ((await ctl.agentHealth(ID)).status === 200 ? true : undefined), 120_000, 1_000).catch(async (error: Error) => {
      const log = (await ctl.logTail(400)).split('\n').filter((line) => !line.includes('/health') && !line.includes('AGENT_UNAVAILABLE'));
      throw new Error(`${error.message}\n${log.join('\n')}`);
    });
    expect(await ctl.client.session(ID).readFile('/workspace/after.txt')).toMatchObject({ content: 'room again' });
    const df = await dockerExec(ctl.docker, ctl.containerName(ID), ['df', '-B1M', '--output=size', '/workspace']);
    expect(Number(df.output.trim().split('\n')[1])).toBeLessThanOrEqual(LIMIT_MB);
  });

  it('keeps a workspace on its own filesystem on delete and gives it back, limit and all, to a new session of that id', async () => {
    const KEPT = `${ID}-kept`;
    await ctl.createSession(KEPT);
    await ctl.exec(KEPT, 'echo kept-work >/workspace/notes.txt');
    const deleted = await ctl.client.deleteSession(KEPT, { keep_workspace: true });
    expect(deleted).toMatchObject({ found: true, workspace_kept_until: expect.any(String) });
    await ctl.createSession(KEPT);
    expect((await ctl.exec(KEPT, 'cat /workspace/notes.txt; stat -c %u /workspace/notes.txt')).logs).toEqual(['kept-work', '1000']);
    const df = await dockerExec(ctl.docker, ctl.containerName(KEPT), ['df', '-B1M', '--output=size', '/workspace']);
    expect(Number(df.output.trim().split('\n')[1])).toBeLessThanOrEqual(LIMIT_MB);
    expect(await ctl.deleteSession(KEPT)).toMatchObject({ session_id: KEPT, found: true });
    await expect(access(`${diskDir}/${ctl.instance}/session-${KEPT}.img`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('frees the filesystem when the session is deleted', async () => {
    expect(await ctl.deleteSession(ID)).toMatchObject({ session_id: ID, found: true });
    expect(await mountsUnder(diskDir)).toEqual([]);
    await expect(access(`${diskDir}/${ctl.instance}/session-${ID}.img`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a new session with 507 HOST_DISK_FULL while the host has less free than SESSION_DISK_MIN_FREE, makes nothing, and says how much is free', async () => {
    const hostFree = await hostFreeBytes();
    await ctl.restart('SIGTERM', { SESSION_DISK_MIN_FREE: `${Math.ceil(hostFree / 1024 ** 3) + 1024}g` });
    const refused = await runnerError(ctl.client.createSession({ session_id: `${ID}-refused` }));
    expect(refused).toMatchObject({ status: 507, code: 'HOST_DISK_FULL', body: { free_bytes: expect.any(Number), min_free_bytes: expect.any(Number) } });
    expect(refused.body.min_free_bytes).toBeGreaterThan(refused.body.free_bytes as number);
    expect(await ctl.leftovers()).toMatchObject({ containers: [], volumes: [], folders: [] });
    expect(await readdir(`${diskDir}/${ctl.instance}`).catch(() => [])).toEqual([]);
    expect((await ctl.request('GET', '/health')).status).toBe(200);

    const metrics = await ctl.request('GET', '/metrics');
    const free = Number(/^runner_session_disks_free_bytes (\d+)$/m.exec(metrics.text)?.[1]);
    // Other work on the host moves it a little between the reads.
    expect(Math.abs(free - hostFree)).toBeLessThan(1024 ** 3);

    // With the floor back at its default (one full session disk), sessions start again.
    await ctl.restart('SIGTERM', { SESSION_DISK_MIN_FREE: `${LIMIT_MB}m` });
    await ctl.createSession(`${ID}-after`);
    expect(await ctl.deleteSession(`${ID}-after`)).toMatchObject({ found: true });
  });
});
