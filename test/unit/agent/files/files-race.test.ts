import { link, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as workspacePath from '../../../../agent/files/workspace-path.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

// The check and the use are separate steps; this lets a test act as a learner process between them.
vi.mock('../../../../agent/files/workspace-path.js', async (importOriginal) => {
  const original = await importOriginal<typeof workspacePath>();
  return { ...original, resolveWorkspacePath: vi.fn(original.resolveWorkspacePath) };
});
const resolveMock = vi.mocked(workspacePath.resolveWorkspacePath);

/** Runs `swap` right after the next path check succeeds, before the agent uses the path. */
function swapAfterCheck(swap: () => Promise<void>): void {
  const original = resolveMock.getMockImplementation()!;
  resolveMock.mockImplementationOnce(async (...args) => {
    const result = await original(...args);
    await swap();
    return result;
  });
}

describe('files: a path changed between its check and its use', () => {
  let agent: TestAgent;
  const ws = (...parts: string[]): string => join(agent.workspace, ...parts);
  const secret = (): string => join(agent.outside, 'secret.txt');
  const outsideState = async () => ({ names: await readdir(agent.outside), secret: await readFile(secret(), 'utf8') });

  beforeEach(async () => {
    agent = await createTestAgent();
    await writeFile(secret(), 'top secret');
    await mkdir(ws('dir'));
    await writeFile(ws('dir', 'secret.txt'), 'inside');
    await writeFile(ws('dir', 'f.txt'), 'inside');
    await writeFile(ws('ok.txt'), 'ok');
  });
  afterEach(async () => agent?.close());

  // A learner renames the folder away and puts a symbolic link to the outside folder in its place.
  const folderBecomesLink = async (): Promise<void> => {
    await rename(ws('dir'), ws('dir-old'));
    await symlink(agent.outside, ws('dir'));
  };
  const fileBecomesLink = async (): Promise<void> => {
    await rm(ws('dir', 'f.txt'));
    await symlink(secret(), ws('dir', 'f.txt'));
  };
  const fileBecomesHardLink = async (): Promise<void> => {
    await rm(ws('dir', 'f.txt'));
    await link(secret(), ws('dir', 'f.txt'));
  };

  it.each([
    ['GET a file whose folder became a link outside', folderBecomesLink, { method: 'GET', url: '/files/workspace/dir/secret.txt' }, 'PATH_OUTSIDE_WORKSPACE'],
    ['GET the raw bytes of a file whose folder became a link outside', folderBecomesLink, { method: 'GET', url: '/files/workspace/dir/secret.txt', headers: { accept: 'application/octet-stream' } }, 'PATH_OUTSIDE_WORKSPACE'],
    ['GET a file that became a link outside', fileBecomesLink, { method: 'GET', url: '/files/workspace/dir/f.txt' }, 'PATH_OUTSIDE_WORKSPACE'],
    ['GET a file that became a hard link to a file outside', fileBecomesHardLink, { method: 'GET', url: '/files/workspace/dir/f.txt' }, 'HARD_LINK_REFUSED'],
    ['PUT a file whose folder became a link outside', folderBecomesLink, { method: 'PUT', url: '/files/workspace/dir/secret.txt', payload: { content: 'pwned' } }, 'PATH_OUTSIDE_WORKSPACE'],
    ['PUT a new file below a folder that became a link outside', folderBecomesLink, { method: 'PUT', url: '/files/workspace/dir/new/x.txt', payload: { content: 'pwned' } }, 'PATH_OUTSIDE_WORKSPACE'],
    ['PUT a file that became a link outside', fileBecomesLink, { method: 'PUT', url: '/files/workspace/dir/f.txt', payload: { content: 'pwned' } }, 'PATH_OUTSIDE_WORKSPACE'],
    ['DELETE a file whose folder became a link outside', folderBecomesLink, { method: 'DELETE', url: '/files/workspace/dir/secret.txt' }, 'PATH_OUTSIDE_WORKSPACE'],
    ['list a folder that became a link outside', folderBecomesLink, { method: 'GET', url: '/files?path=/workspace/dir' }, 'PATH_OUTSIDE_WORKSPACE'],
    ['mkdir in a folder that became a link outside', folderBecomesLink, { method: 'POST', url: '/files/mkdir', payload: { path: 'dir/new' } }, 'PATH_OUTSIDE_WORKSPACE'],
    ['move a file out of a folder that became a link outside', folderBecomesLink, { method: 'POST', url: '/files/move', payload: { from: 'dir/secret.txt', to: 'stolen.txt' } }, 'PATH_OUTSIDE_WORKSPACE'],
  ] as const)('refuses to %s', async (_name, swap, request, code) => {
    const before = await outsideState();
    swapAfterCheck(swap);
    const res = await agent.app.inject(request);
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code });
    expect(await outsideState()).toEqual(before);
  });

  it('refuses to move a file into a folder replaced by a link', async () => {
    const before = await outsideState();
    // The second check (the target) is the one raced.
    const original = resolveMock.getMockImplementation()!;
    resolveMock.mockImplementationOnce(original);
    swapAfterCheck(folderBecomesLink);
    const res = await agent.app.inject({ method: 'POST', url: '/files/move', payload: { from: 'ok.txt', to: 'dir/ok.txt' } });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 403, code: 'PATH_OUTSIDE_WORKSPACE' });
    expect(await outsideState()).toEqual(before);
  });
});
