import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PUBLIC_WORKSPACE, resolveWorkspacePath } from '../../../../agent/files/workspace-path.js';

describe('resolveWorkspacePath', () => {
  let root: string;
  let ws: string;
  let outside: string;
  beforeEach(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'workspace-path-')));
    ws = join(root, 'workspace');
    outside = join(root, 'outside');
    await mkdir(join(ws, 'src'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(ws, 'src', 'main.py'), '');
    await writeFile(join(outside, 'secret'), '');
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  const refused = async (requested: string, code: string, options = {}) =>
    expect(resolveWorkspacePath(ws, requested, options)).rejects.toMatchObject({ code });

  it('maps the public root, relative and absolute spellings to the same place', async () => {
    for (const requested of [PUBLIC_WORKSPACE, '/workspace/', '', '.', 'src/..']) {
      expect(await resolveWorkspacePath(ws, requested)).toEqual({ public: '/workspace', relative: '', real: ws });
    }
    for (const requested of ['/workspace/src/main.py', 'src/main.py', './src//main.py', '/workspace/src/../src/main.py']) {
      expect(await resolveWorkspacePath(ws, requested)).toEqual({
        public: '/workspace/src/main.py',
        relative: 'src/main.py',
        real: join(ws, 'src', 'main.py'),
      });
    }
  });

  it('resolves paths that do not exist yet below the deepest existing folder', async () => {
    expect(await resolveWorkspacePath(ws, 'src/new/deeper/file.txt')).toMatchObject({
      relative: 'src/new/deeper/file.txt',
      real: join(ws, 'src/new/deeper/file.txt'),
    });
  });

  it('refuses lexical escapes, look-alike prefixes, NUL bytes and over-long paths', async () => {
    await refused('../outside/secret', 'PATH_OUTSIDE_WORKSPACE');
    await refused('/workspace/../outside', 'PATH_OUTSIDE_WORKSPACE');
    await refused('/etc/passwd', 'PATH_OUTSIDE_WORKSPACE');
    await refused('/workspacex', 'PATH_OUTSIDE_WORKSPACE');
    await refused('/', 'PATH_OUTSIDE_WORKSPACE');
    await refused('src/a\0b', 'INVALID_PATH');
    await refused(`src/${'x/'.repeat(2100)}`, 'INVALID_PATH');
  });

  it('follows symbolic links that stay inside and names the target', async () => {
    await symlink('src', join(ws, 'alias'));
    await symlink(join(ws, 'src', 'main.py'), join(ws, 'abs-link'));
    expect(await resolveWorkspacePath(ws, 'alias/main.py')).toMatchObject({ public: '/workspace/src/main.py', relative: 'src/main.py' });
    expect(await resolveWorkspacePath(ws, 'alias/new.txt')).toMatchObject({ relative: 'src/new.txt' });
    expect(await resolveWorkspacePath(ws, 'abs-link')).toMatchObject({ relative: 'src/main.py' });
  });

  it('refuses symbolic links out of the workspace: to a file, a folder, dangling, or a loop', async () => {
    await symlink(join(outside, 'secret'), join(ws, 'to-file'));
    await symlink(outside, join(ws, 'to-dir'));
    await symlink('../../outside', join(ws, 'src', 'up'));
    await symlink(join(outside, 'missing'), join(ws, 'dangling'));
    await symlink('loop', join(ws, 'loop'));
    await refused('to-file', 'PATH_OUTSIDE_WORKSPACE');
    await refused('to-dir', 'PATH_OUTSIDE_WORKSPACE');
    await refused('to-dir/secret', 'PATH_OUTSIDE_WORKSPACE');
    await refused('to-dir/new-file', 'PATH_OUTSIDE_WORKSPACE');
    await refused('src/up/secret', 'PATH_OUTSIDE_WORKSPACE');
    await refused('dangling', 'PATH_OUTSIDE_WORKSPACE');
    await refused('dangling/child', 'PATH_OUTSIDE_WORKSPACE');
    await refused('loop', 'INVALID_PATH');
    await refused('to-dir/secret', 'PATH_OUTSIDE_WORKSPACE', { followFinal: false });
  });

  it('stops at a final symbolic link with followFinal: false, so the link itself can be deleted or moved', async () => {
    await symlink(outside, join(ws, 'src', 'to-dir'));
    await symlink(join(outside, 'missing'), join(ws, 'dangling'));
    await symlink('loop', join(ws, 'loop'));
    expect(await resolveWorkspacePath(ws, 'src/to-dir', { followFinal: false })).toEqual({
      public: '/workspace/src/to-dir',
      relative: 'src/to-dir',
      real: join(ws, 'src', 'to-dir'),
    });
    expect(await resolveWorkspacePath(ws, 'dangling', { followFinal: false })).toMatchObject({ relative: 'dangling' });
    expect(await resolveWorkspacePath(ws, 'loop', { followFinal: false })).toMatchObject({ relative: 'loop' });
  });

  it('leaves a file used as a folder to the operation, which fails with ENOTDIR', async () => {
    expect(await resolveWorkspacePath(ws, 'src/main.py/child')).toMatchObject({ relative: 'src/main.py/child' });
  });

  it('reports a missing workspace as ENOENT', async () => {
    await expect(resolveWorkspacePath(join(root, 'gone'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
