import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inotifyLimitsFor, raiseHostInotifyLimits, SESSION_INOTIFY_QUOTA, sessionQuotaScript } from '../../../../controller/runtime/host-limits.js';

describe('host inotify limits', () => {
  it("cover every session's root and learner at their quota, on top of the host's own share", () => {
    const limits = inotifyLimitsFor(200, { maxUserInstances: 128, maxUserWatches: 8192 });
    expect(limits.maxUserInstances).toBe(128 + 200 * 2 * SESSION_INOTIFY_QUOTA.instances);
    expect(limits.maxUserWatches).toBe(8192 + 200 * 2 * SESSION_INOTIFY_QUOTA.watches);
    // The default 128 would stop the 129th session's watch; 200 sessions get at least one instance each, twice over.
    expect(limits.maxUserInstances).toBeGreaterThan(2 * 200);
  });

  it('never lower what the host already allows', () => {
    const generous = { maxUserInstances: 1_000_000, maxUserWatches: 50_000_000 };
    expect(inotifyLimitsFor(20, generous)).toEqual(generous);
  });

  it('grow with MAX_SESSIONS', () => {
    const small = inotifyLimitsFor(20, { maxUserInstances: 128, maxUserWatches: 8192 });
    const large = inotifyLimitsFor(400, { maxUserInstances: 128, maxUserWatches: 8192 });
    expect(large.maxUserInstances).toBeGreaterThan(small.maxUserInstances);
    expect(large.maxUserWatches).toBeGreaterThan(small.maxUserWatches);
  });

  it("set a session's quota in its own namespace's user.max_inotify_* files", () => {
    expect(sessionQuotaScript({ instances: 7, watches: 99 })).toBe('echo 7 > /proc/sys/user/max_inotify_instances && echo 99 > /proc/sys/user/max_inotify_watches');
  });
});

describe('raising the host limits', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'host-limits-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the limits MAX_SESSIONS needs and says what was there', async () => {
    await writeFile(join(dir, 'max_user_instances'), '128\n');
    await writeFile(join(dir, 'max_user_watches'), '8192\n');
    const { before, after } = await raiseHostInotifyLimits(50, dir);
    expect(before).toEqual({ maxUserInstances: 128, maxUserWatches: 8192 });
    expect(after).toEqual(inotifyLimitsFor(50, before));
    expect(Number(await readFile(join(dir, 'max_user_instances'), 'utf8'))).toBe(after.maxUserInstances);
    expect(Number(await readFile(join(dir, 'max_user_watches'), 'utf8'))).toBe(after.maxUserWatches);
  });

  it('leaves higher limits as they are', async () => {
    await writeFile(join(dir, 'max_user_instances'), '999999\n');
    await writeFile(join(dir, 'max_user_watches'), '99999999\n');
    await raiseHostInotifyLimits(50, dir);
    expect(await readFile(join(dir, 'max_user_instances'), 'utf8')).toBe('999999\n');
    expect(await readFile(join(dir, 'max_user_watches'), 'utf8')).toBe('99999999\n');
  });

  it('fails when the limits cannot be read', async () => {
    await expect(raiseHostInotifyLimits(50, join(dir, 'missing'))).rejects.toThrow();
  });
});
