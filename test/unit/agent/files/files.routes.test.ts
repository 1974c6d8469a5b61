import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { Client } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_LIST_ENTRIES } from '../../../../agent/files/workspace-files.js';
import { createTestAgent, LEARNER_UID, type TestAgent } from '../../../helpers/test-agent.js';

const OCTET = { 'content-type': 'application/octet-stream' };

describe('files', () => {
  let agent: TestAgent;
  beforeEach(async () => {
    agent = await createTestAgent();
  });
  afterEach(async () => agent?.close());

  const ws = (...parts: string[]): string => join(agent.workspace, ...parts);
  const put = (path: string, payload: object | Buffer, headers: Record<string, string> = {}) =>
    agent.app.inject({ method: 'PUT', url: `/files/workspace/${path}`, payload, headers: Buffer.isBuffer(payload) ? { ...OCTET, ...headers } : headers });
  const get = (path: string, headers: Record<string, string> = {}) => agent.app.inject({ method: 'GET', url: `/files/workspace/${path}`, headers });

  describe('list', () => {
    it('lists a folder with name, public path, type, size, octal mode and modification time', async () => {
      await writeFile(ws('a.txt'), 'hello');
      await chmod(ws('a.txt'), 0o640);
      await mkdir(ws('dir'));
      await symlink('a.txt', ws('link'));
      const res = await agent.app.inject({ url: '/files?path=/workspace' });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ path: '/workspace', truncated: false });
      expect(body.entries).toEqual([
        { name: 'a.txt', path: '/workspace/a.txt', type: 'file', size: 5, mode: '0640', modified: expect.any(String) },
        { name: 'dir', path: '/workspace/dir', type: 'directory', size: expect.any(Number), mode: '0755', modified: expect.any(String) },
        { name: 'link', path: '/workspace/link', type: 'symlink', size: 5, mode: '0777', modified: expect.any(String) },
      ]);
      expect(new Date(body.entries[0].modified).getTime()).toBe((await stat(ws('a.txt'))).mtime.getTime());
    });

    it('lists the workspace by default and accepts paths relative to it', async () => {
      await mkdir(ws('src'));
      await writeFile(ws('src', 'main.py'), 'print(1)');
      expect((await agent.app.inject({ url: '/files' })).json().entries.map((e: { path: string }) => e.path)).toEqual(['/workspace/src']);
      const relative = await agent.app.inject({ url: '/files?path=src' });
      expect(relative.json()).toMatchObject({ path: '/workspace/src', entries: [{ path: '/workspace/src/main.py' }] });
    });

    it('recurses to the requested depth without entering symlinked folders', async () => {
      await mkdir(ws('a', 'b', 'c'), { recursive: true });
      await writeFile(ws('a', 'b', 'c', 'deep.txt'), 'x');
      await symlink(agent.outside, ws('out'));
      await writeFile(join(agent.outside, 'secret.txt'), 'secret');
      const paths = async (depth: number) =>
        (await agent.app.inject({ url: `/files?depth=${depth}` })).json().entries.map((e: { path: string }) => e.path);
      expect(await paths(1)).toEqual(['/workspace/a', '/workspace/out']);
      expect(await paths(2)).toEqual(['/workspace/a', '/workspace/a/b', '/workspace/out']);
      expect(await paths(10)).toEqual(['/workspace/a', '/workspace/a/b', '/workspace/a/b/c', '/workspace/a/b/c/deep.txt', '/workspace/out']);
    });

    it('caps the number of entries and says so', async () => {
      // Ten thousand files are created fastest in memory: the test disk here is slow.
      const memory = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'files-cap-'));
      try {
        await chown(memory, LEARNER_UID, LEARNER_UID);
        await agent.close();
        agent = await createTestAgent({ AGENT_WORKSPACE: memory });
        await mkdir(join(memory, 'many'));
        for (let i = 0; i <= MAX_LIST_ENTRIES; i++) closeSync(openSync(join(memory, 'many', `f${i}`), 'w'));
        const full = (await agent.app.inject({ url: '/files?path=/workspace/many' })).json();
        expect(full.entries).toHaveLength(MAX_LIST_ENTRIES);
        expect(full.truncated).toBe(true);
        await rm(join(memory, 'many', 'f0'));
        expect((await agent.app.inject({ url: '/files?path=/workspace/many' })).json().truncated).toBe(false);
      } finally {
        await rm(memory, { recursive: true, force: true });
      }
    });

    it('refuses a file with NOT_A_DIRECTORY, a missing folder with FILE_NOT_FOUND and a bad depth with VALIDATION', async () => {
      await writeFile(ws('f'), 'x');
      const file = await agent.app.inject({ url: '/files?path=/workspace/f' });
      expect([file.statusCode, file.json().code]).toEqual([409, 'NOT_A_DIRECTORY']);
      const missing = await agent.app.inject({ url: '/files?path=/workspace/nope' });
      expect([missing.statusCode, missing.json().code]).toEqual([404, 'FILE_NOT_FOUND']);
      for (const depth of ['0', '11', 'abc', '1.5']) {
        const bad = await agent.app.inject({ url: `/files?depth=${depth}` });
        expect([bad.statusCode, bad.json().code]).toEqual([400, 'VALIDATION']);
      }
    });
  });

  describe('read', () => {
    it('returns UTF-8 text as utf-8 and other bytes as base64', async () => {
      await writeFile(ws('text.md'), 'héllo ✓\n');
      const text = await get('text.md');
      expect(text.statusCode).toBe(200);
      expect(text.json()).toEqual({ path: '/workspace/text.md', encoding: 'utf-8', content: 'héllo ✓\n', size: 11, modified: expect.any(String) });
      const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]);
      await writeFile(ws('img.png'), bytes);
      expect((await get('img.png')).json()).toMatchObject({ encoding: 'base64', content: bytes.toString('base64'), size: 6 });
    });

    it('streams the raw bytes for Accept: application/octet-stream', async () => {
      const bytes = randomBytes(300_000);
      await writeFile(ws('blob.bin'), bytes);
      const res = await get('blob.bin', { accept: 'application/octet-stream' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-length']).toBe('300000');
      expect(res.rawPayload.equals(bytes)).toBe(true);
      await writeFile(ws('empty'), '');
      expect((await get('empty', { accept: 'application/octet-stream' })).rawPayload.length).toBe(0);
    });

    it('answers a folder with IS_A_DIRECTORY and a missing file with FILE_NOT_FOUND', async () => {
      await mkdir(ws('dir'));
      for (const path of ['dir', '']) {
        const res = await agent.app.inject({ url: `/files/workspace${path ? `/${path}` : ''}` });
        expect([res.statusCode, res.json().code]).toEqual([409, 'IS_A_DIRECTORY']);
      }
      const missing = await get('nope.txt');
      expect([missing.statusCode, missing.json().code]).toEqual([404, 'FILE_NOT_FOUND']);
    });

    it('follows a symbolic link that stays inside the workspace', async () => {
      await mkdir(ws('real'));
      await writeFile(ws('real', 'f.txt'), 'inside');
      await symlink('real', ws('alias'));
      expect((await get('alias/f.txt')).json()).toMatchObject({ path: '/workspace/alias/f.txt', content: 'inside' });
    });

    it('refuses a FIFO without hanging', async () => {
      execFileSync('mkfifo', [ws('pipe')]);
      const res = await get('pipe');
      expect([res.statusCode, res.json().code]).toEqual([400, 'INVALID_PATH']);
    });

    it('reads names with spaces and non-ASCII characters', async () => {
      await writeFile(ws('été à.txt'), 'ok');
      expect((await get(encodeURIComponent('été à.txt'))).json()).toMatchObject({ path: '/workspace/été à.txt', content: 'ok' });
    });
  });

  describe('write', () => {
    it('creates a file and its parent folders owned by the learner, then replaces it', async () => {
      const created = await put('src/app/main.py', { content: 'print("hi")\n' });
      expect(created.statusCode).toBe(201);
      expect(created.json()).toEqual({ path: '/workspace/src/app/main.py', size: 12 });
      expect(await readFile(ws('src/app/main.py'), 'utf8')).toBe('print("hi")\n');
      for (const path of ['src', 'src/app', 'src/app/main.py']) {
        const info = await stat(ws(path));
        expect([info.uid, info.gid]).toEqual([LEARNER_UID, LEARNER_UID]);
      }
      expect((await stat(ws('src/app/main.py'))).mode & 0o777).toBe(0o644);
      expect((await stat(ws('src/app'))).mode & 0o777).toBe(0o755);

      const replaced = await put('src/app/main.py', { content: 'v2' });
      expect(replaced.statusCode).toBe(200);
      expect(replaced.json()).toEqual({ path: '/workspace/src/app/main.py', size: 2 });
      expect(await readFile(ws('src/app/main.py'), 'utf8')).toBe('v2');
    });

    it('keeps the mode of a replaced file and leaves no temporary file behind', async () => {
      await writeFile(ws('run.sh'), '#!/bin/sh\n');
      await chmod(ws('run.sh'), 0o750);
      expect((await put('run.sh', { content: '#!/bin/sh\necho hi\n' })).statusCode).toBe(200);
      expect((await stat(ws('run.sh'))).mode & 0o7777).toBe(0o750);
      expect(await readdir(agent.workspace)).toEqual(['run.sh']);
    });

    it('round-trips binary content through base64', async () => {
      const bytes = randomBytes(4096);
      expect((await put('bin/data', { content: bytes.toString('base64'), encoding: 'base64' })).statusCode).toBe(201);
      expect((await readFile(ws('bin/data'))).equals(bytes)).toBe(true);
      const back = (await get('bin/data')).json();
      expect(back.encoding).toBe('base64');
      expect(Buffer.from(back.content, 'base64').equals(bytes)).toBe(true);
    });

    it('round-trips binary content as application/octet-stream', async () => {
      const bytes = randomBytes(1024 * 1024);
      const res = await put('raw/blob.bin', bytes);
      expect(res.statusCode).toBe(201);
      expect(res.json()).toEqual({ path: '/workspace/raw/blob.bin', size: bytes.length });
      expect((await stat(ws('raw/blob.bin'))).uid).toBe(LEARNER_UID);
      expect((await get('raw/blob.bin', { accept: 'application/octet-stream' })).rawPayload.equals(bytes)).toBe(true);
      expect((await put('raw/empty', Buffer.alloc(0))).json()).toEqual({ path: '/workspace/raw/empty', size: 0 });
    });

    it('refuses writing onto a folder and a path through a file', async () => {
      await mkdir(ws('dir'));
      await writeFile(ws('file'), 'x');
      const onFolder = await put('dir', { content: 'x' });
      expect([onFolder.statusCode, onFolder.json().code]).toEqual([409, 'IS_A_DIRECTORY']);
      const throughFile = await put('file/child', { content: 'x' });
      expect([throughFile.statusCode, throughFile.json().code]).toEqual([409, 'NOT_A_DIRECTORY']);
    });

    it('refuses a text/plain body and a request without one', async () => {
      const res = await agent.app.inject({ method: 'PUT', url: '/files/workspace/a.txt', payload: 'x', headers: { 'content-type': 'text/plain' } });
      expect([res.statusCode, res.json().code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
      const none = await agent.app.inject({ method: 'PUT', url: '/files/workspace/a.txt' });
      expect([none.statusCode, none.json().code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
      expect(await readdir(agent.workspace)).toEqual([]);
    });
  });

  describe('body limit', () => {
    it('answers 413 PAYLOAD_TOO_LARGE for JSON and raw bodies over AGENT_BODY_LIMIT_BYTES', async () => {
      await agent.close();
      agent = await createTestAgent({ AGENT_BODY_LIMIT_BYTES: '1024' });
      const raw = await put('big.bin', randomBytes(1025));
      expect([raw.statusCode, raw.json().code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      const json = await put('big.txt', { content: 'x'.repeat(1100) });
      expect([json.statusCode, json.json().code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect(await readdir(agent.workspace)).toEqual([]);
      expect((await put('small.bin', randomBytes(1000))).statusCode).toBe(201);
      // A file bigger than the limit is still readable raw, but not as JSON.
      await writeFile(ws('large'), randomBytes(2000));
      const asJson = await get('large');
      expect([asJson.statusCode, asJson.json().code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect((await get('large', { accept: 'application/octet-stream' })).rawPayload.length).toBe(2000);
    });
  });

  describe('delete', () => {
    it('deletes a file, a folder with its content, and a symbolic link without its target', async () => {
      await writeFile(ws('f.txt'), 'x');
      await mkdir(ws('tree/a/b'), { recursive: true });
      await writeFile(ws('tree/a/b/c.txt'), 'x');
      await symlink('f.txt', ws('tree/a/link'));
      await writeFile(ws('target.txt'), 'kept');
      await symlink('target.txt', ws('alias'));
      for (const path of ['f.txt', 'tree', 'alias']) {
        const res = await agent.app.inject({ method: 'DELETE', url: `/files/workspace/${path}` });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ path: `/workspace/${path}` });
      }
      expect(await readdir(agent.workspace)).toEqual(['target.txt']);
      expect(await readFile(ws('target.txt'), 'utf8')).toBe('kept');
    });

    it('answers a missing path with FILE_NOT_FOUND and refuses the workspace root', async () => {
      const missing = await agent.app.inject({ method: 'DELETE', url: '/files/workspace/nope' });
      expect([missing.statusCode, missing.json().code]).toEqual([404, 'FILE_NOT_FOUND']);
      const root = await agent.app.inject({ method: 'DELETE', url: '/files/workspace' });
      expect([root.statusCode, root.json().code]).toEqual([403, 'PERMISSION_DENIED']);
      expect((await lstat(agent.workspace)).isDirectory()).toBe(true);
    });
  });

  describe('mkdir', () => {
    it('creates a folder and its parents owned by the learner; an existing folder is 200', async () => {
      const res = await agent.app.inject({ method: 'POST', url: '/files/mkdir', payload: { path: '/workspace/a/b/c' } });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toEqual({ path: '/workspace/a/b/c' });
      for (const path of ['a', 'a/b', 'a/b/c']) {
        const info = await stat(ws(path));
        expect([info.isDirectory(), info.uid, info.gid]).toEqual([true, LEARNER_UID, LEARNER_UID]);
      }
      const again = await agent.app.inject({ method: 'POST', url: '/files/mkdir', payload: { path: 'a/b' } });
      expect(again.statusCode).toBe(200);
      expect(again.json()).toEqual({ path: '/workspace/a/b' });
    });

    it('refuses a path where a file exists', async () => {
      await writeFile(ws('f'), 'x');
      const res = await agent.app.inject({ method: 'POST', url: '/files/mkdir', payload: { path: 'f' } });
      expect([res.statusCode, res.json().code]).toEqual([409, 'NOT_A_DIRECTORY']);
    });
  });

  describe('move', () => {
    const move = (payload: object) => agent.app.inject({ method: 'POST', url: '/files/move', payload });

    it('renames a file and a folder, creating the target parents', async () => {
      await writeFile(ws('a.txt'), 'A');
      await mkdir(ws('dir'));
      await writeFile(ws('dir/x'), 'X');
      const file = await move({ from: '/workspace/a.txt', to: 'docs/b.txt' });
      expect(file.statusCode).toBe(200);
      expect(file.json()).toEqual({ from: '/workspace/a.txt', to: '/workspace/docs/b.txt' });
      expect((await stat(ws('docs'))).uid).toBe(LEARNER_UID);
      expect(await move({ from: 'dir', to: 'dir2' }).then((r) => r.statusCode)).toBe(200);
      expect((await readdir(agent.workspace)).sort()).toEqual(['dir2', 'docs']);
      expect(await readFile(ws('docs/b.txt'), 'utf8')).toBe('A');
      expect(await readFile(ws('dir2/x'), 'utf8')).toBe('X');
    });

    it('refuses an existing target unless overwrite is set', async () => {
      await writeFile(ws('a'), 'A');
      await writeFile(ws('b'), 'B');
      const refused = await move({ from: 'a', to: 'b' });
      expect([refused.statusCode, refused.json().code]).toEqual([409, 'ALREADY_EXISTS']);
      expect(await readFile(ws('b'), 'utf8')).toBe('B');
      expect((await move({ from: 'a', to: 'b', overwrite: true })).statusCode).toBe(200);
      expect(await readFile(ws('b'), 'utf8')).toBe('A');
      expect(await readdir(agent.workspace)).toEqual(['b']);
    });

    it('answers a missing source with FILE_NOT_FOUND and a folder into itself with INVALID_PATH', async () => {
      const missing = await move({ from: 'nope', to: 'x' });
      expect([missing.statusCode, missing.json().code]).toEqual([404, 'FILE_NOT_FOUND']);
      await mkdir(ws('d'));
      const into = await move({ from: 'd', to: 'd/sub/d' });
      expect([into.statusCode, into.json().code]).toEqual([400, 'INVALID_PATH']);
      expect(await readdir(ws('d'))).toEqual([]);
    });

    it('moves a symbolic link itself', async () => {
      await writeFile(ws('t'), 'T');
      await symlink('t', ws('l'));
      expect((await move({ from: 'l', to: 'l2' })).statusCode).toBe(200);
      expect(await readlink(ws('l2'))).toBe('t');
      expect(await readFile(ws('t'), 'utf8')).toBe('T');
    });
  });

  describe('routing', () => {
    it('keeps POST /files/mkdir and /files/move apart from files named mkdir and move', async () => {
      expect((await put('mkdir', { content: 'a file named mkdir' })).statusCode).toBe(201);
      expect((await get('mkdir')).json().content).toBe('a file named mkdir');
      expect((await agent.app.inject({ method: 'POST', url: '/files/mkdir', payload: { path: 'move' } })).statusCode).toBe(201);
      expect((await agent.app.inject({ method: 'DELETE', url: '/files/workspace/move' })).statusCode).toBe(200);
      const post = await agent.app.inject({ method: 'POST', url: '/files/workspace/x', payload: {} });
      expect([post.statusCode, post.json().code]).toEqual([404, 'ROUTE_NOT_FOUND']);
    });

    it('refuses paths that do not start with /workspace', async () => {
      for (const url of ['/files/etc/passwd', '/files/mkdir', '/files/workspacex/a']) {
        const res = await agent.app.inject({ url });
        expect([url, res.statusCode, res.json().code]).toEqual([url, 403, 'PATH_OUTSIDE_WORKSPACE']);
      }
    });

    it('refuses dot segments, encoded slashes and empty segments that fastify would decode or keep', async () => {
      await mkdir(ws('a'));
      await writeFile(ws('a/b'), 'x');
      // What fastify's wildcard param makes of these: %2F becomes a slash, // stays. The raw URL is what counts.
      const star = async (url: string) => {
        const probe = Fastify();
        probe.get('/probe/*', async (request) => (request.params as Record<string, string>)['*']);
        try {
          return (await probe.inject({ url })).body;
        } finally {
          await probe.close();
        }
      };
      expect(await star('/probe/workspace/a%2Fb')).toBe('workspace/a/b');
      expect(await star('/probe/workspace//a')).toBe('workspace//a');
      for (const url of ['/files/workspace/a%2Fb', '/files/workspace//a/b', '/files/workspace/a/%2F/b']) {
        const res = await agent.app.inject({ url });
        expect([url, res.statusCode, res.json().code]).toEqual([url, 400, 'INVALID_PATH']);
      }
      expect((await agent.app.inject({ url: '/files/workspace/a/b/' })).json().content).toBe('x');
    });

    it('refuses literal . and .. segments that reach the server (light-my-request would normalise them away)', async () => {
      await agent.app.listen({ host: '127.0.0.1', port: 0 });
      const address = agent.app.server.address() as { port: number };
      const client = new Client(`http://127.0.0.1:${address.port}`);
      try {
        for (const path of ['/files/workspace/../outside/x', '/files/workspace/a/%2e%2e/b', '/files/workspace/%2E%2E', '/files/workspace/./a', '/files/workspace/a/%2E/b']) {
          const res = await client.request({ method: 'GET', path });
          expect([path, res.statusCode, ((await res.body.json()) as { code: string }).code]).toEqual([path, 400, 'INVALID_PATH']);
        }
      } finally {
        await client.close();
      }
    });
  });
});
