import { chmod, lstat, mkdir, mkdtemp, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openFolderNoFollow } from '../../../../agent/files/no-follow-folder.js';

describe('openFolderNoFollow', () => {
  let root: string;
  beforeEach(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'no-follow-')));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('opens a folder, and makes the missing ones with the mode asked for the last', async () => {
    const handle = await openFolderNoFollow(join(root, 'a/b/c'), { createMode: 0o700 });
    try {
      await handle.chown(1000, 1000);
    } finally {
      await handle.close();
    }
    const made = await stat(join(root, 'a/b/c'));
    expect(made.uid).toBe(1000);
    expect(made.mode & 0o777).toBe(0o700);
    expect((await stat(join(root, 'a'))).uid).toBe(0);
  });

  it.each([
    ['the folder itself', 'data'],
    ['a folder on the way', 'home/data'],
  ])('refuses a symbolic link as %s and leaves its target alone', async (_, path) => {
    const target = join(root, 'target');
    await mkdir(target);
    await chmod(target, 0o755);
    await mkdir(join(root, 'home'));
    const link = path === 'data' ? join(root, 'data') : join(root, 'home-link');
    await symlink(target, link);
    const requested = path === 'data' ? link : join(link, 'data');
    await expect(openFolderNoFollow(requested, { createMode: 0o755 })).rejects.toMatchObject({ code: expect.stringMatching(/^(ELOOP|ENOTDIR)$/) });
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect((await stat(target)).uid).toBe(0);
  });

  it('refuses a relative path and ..', async () => {
    await expect(openFolderNoFollow('run/user')).rejects.toThrow(/absolute/);
    await expect(openFolderNoFollow(`${root}/../x`)).rejects.toThrow(/\.\./);
  });
});
