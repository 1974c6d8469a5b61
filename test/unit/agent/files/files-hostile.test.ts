import { link, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

/*
 * Every request here tries to read, write or list something outside the workspace. Each is checked for its status
 * and code, and for the folder beside the workspace (a secret file, reached from inside through symbolic links and a
 * hard link) being exactly as before: same names, types, modes, times, link targets and bytes.
 */

interface HostileCase {
  name: string;
  method: 'GET' | 'PUT' | 'DELETE' | 'POST';
  url: string;
  /** An object goes as JSON, a Buffer as application/octet-stream, a string as-is with `headers`. */
  body?: object | Buffer | string;
  headers?: Record<string, string>;
  /** Sent over a real socket, so the URL reaches the server unnormalised (light-my-request resolves dot segments). */
  raw?: boolean;
  status: number;
  /** The error code; absent for requests that are allowed because they only touch the workspace. */
  code?: string;
  /** What else must hold afterwards, for the allowed ones. */
  check?: (ws: (...parts: string[]) => string) => Promise<void>;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const pwned = { content: 'pwned' };
const mkdirReq = (body: unknown): Pick<HostileCase, 'method' | 'url' | 'body'> => ({ method: 'POST', url: '/files/mkdir', body: body as object });
const moveReq = (body: unknown): Pick<HostileCase, 'method' | 'url' | 'body'> => ({ method: 'POST', url: '/files/move', body: body as object });

const cases: HostileCase[] = [
  // Reading through URL spellings
  { name: 'GET literal .. escape', method: 'GET', url: '/files/workspace/../outside/secret.txt', raw: true, status: 400, code: 'INVALID_PATH' },
  { name: 'GET %2e%2e escape', method: 'GET', url: '/files/workspace/%2e%2e/outside/secret.txt', raw: true, status: 400, code: 'INVALID_PATH' },
  { name: 'GET %2E%2E%2F escape in one segment', method: 'GET', url: '/files/workspace/%2E%2E%2Foutside%2Fsecret.txt', raw: true, status: 400, code: 'INVALID_PATH' },
  { name: 'GET %2e%2e as a client library normalises it', method: 'GET', url: '/files/workspace/%2e%2e/outside/secret.txt', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET encoded slashes', method: 'GET', url: '/files/workspace/sub%2f..%2f..%2foutside%2fsecret.txt', status: 400, code: 'INVALID_PATH' },
  { name: 'GET double slash', method: 'GET', url: '/files/workspace//outside/secret.txt', status: 400, code: 'INVALID_PATH' },
  { name: 'GET absolute path outside', method: 'GET', url: '/files/etc/passwd', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET NUL byte', method: 'GET', url: '/files/workspace/ok.txt%00.png', status: 400, code: 'INVALID_PATH' },
  { name: 'GET over-long path', method: 'GET', url: `/files/workspace/${'a/'.repeat(2100)}x`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET over-long name', method: 'GET', url: `/files/workspace/${'a'.repeat(300)}`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET malformed percent-encoding', method: 'GET', url: '/files/workspace/%E0%A4%A', raw: true, status: 400, code: 'INVALID_PATH' },
  { name: 'GET backslashes are names, not separators', method: 'GET', url: '/files/workspace/..%5c..%5coutside%5csecret.txt', status: 404, code: 'FILE_NOT_FOUND' },
  { name: 'GET symlink to a file outside', method: 'GET', url: '/files/workspace/link-file', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET raw bytes through a symlink outside', method: 'GET', url: '/files/workspace/link-file', headers: { accept: 'application/octet-stream' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a symlinked folder outside', method: 'GET', url: '/files/workspace/link-dir/secret.txt', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET relative symlink outside', method: 'GET', url: '/files/workspace/rel-out', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET dangling symlink outside', method: 'GET', url: '/files/workspace/dangling', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a nested ../.. symlink', method: 'GET', url: '/files/workspace/sub/up/outside/secret.txt', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET hard link to a file outside', method: 'GET', url: '/files/workspace/hard.txt', status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'GET raw bytes of a hard link', method: 'GET', url: '/files/workspace/hard.txt', headers: { accept: 'application/octet-stream' }, status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'GET symlink loop', method: 'GET', url: '/files/workspace/loop', status: 400, code: 'INVALID_PATH' },

  // Writing
  { name: 'PUT literal .. escape', method: 'PUT', url: '/files/workspace/../outside/secret.txt', raw: true, body: pwned, status: 400, code: 'INVALID_PATH' },
  { name: 'PUT %2e%2e as normalised', method: 'PUT', url: '/files/workspace/%2e%2e/outside/new.txt', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT sibling folder by prefix', method: 'PUT', url: '/files/workspace-evil/x', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT through a symlink to a file outside', method: 'PUT', url: '/files/workspace/link-file', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT raw bytes through a symlink outside', method: 'PUT', url: '/files/workspace/link-file', body: Buffer.from('pwned'), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT into a symlinked folder outside', method: 'PUT', url: '/files/workspace/link-dir/new.txt', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT creating the target of a dangling symlink', method: 'PUT', url: '/files/workspace/dangling', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT creating parents through a dangling symlink', method: 'PUT', url: '/files/workspace/dangling/a/b.txt', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT through a nested ../.. symlink', method: 'PUT', url: '/files/workspace/sub/up/outside/secret.txt', body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT onto a hard link', method: 'PUT', url: '/files/workspace/hard.txt', body: pwned, status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'PUT NUL byte', method: 'PUT', url: '/files/workspace/a%00b', body: pwned, status: 400, code: 'INVALID_PATH' },
  { name: 'PUT through a symlink loop', method: 'PUT', url: '/files/workspace/loop/x', body: pwned, status: 400, code: 'INVALID_PATH' },
  { name: 'PUT onto the workspace root', method: 'PUT', url: '/files/workspace', body: pwned, status: 409, code: 'IS_A_DIRECTORY' },
  { name: 'PUT content of the wrong type', method: 'PUT', url: '/files/workspace/new.txt', body: { content: 5 }, status: 400, code: 'VALIDATION' },
  { name: 'PUT without content', method: 'PUT', url: '/files/workspace/new.txt', body: {}, status: 400, code: 'VALIDATION' },
  { name: 'PUT with an unknown field', method: 'PUT', url: '/files/workspace/new.txt', body: { content: 'x', mode: '4755' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT invalid base64 characters', method: 'PUT', url: '/files/workspace/new.txt', body: { content: '@@@@', encoding: 'base64' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT truncated base64', method: 'PUT', url: '/files/workspace/new.txt', body: { content: 'abc', encoding: 'base64' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT unknown encoding', method: 'PUT', url: '/files/workspace/new.txt', body: { content: 'x', encoding: 'latin1' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT broken JSON', method: 'PUT', url: '/files/workspace/new.txt', body: '{"content": "x"', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'PUT a JSON array', method: 'PUT', url: '/files/workspace/new.txt', body: '["x"]', headers: JSON_TYPE, status: 400, code: 'VALIDATION' },
  { name: 'PUT JSON null', method: 'PUT', url: '/files/workspace/new.txt', body: 'null', headers: JSON_TYPE, status: 400, code: 'VALIDATION' },
  { name: 'PUT a text/plain body', method: 'PUT', url: '/files/workspace/new.txt', body: 'x', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },

  // Deleting
  { name: 'DELETE the workspace root', method: 'DELETE', url: '/files/workspace', status: 403, code: 'PERMISSION_DENIED' },
  { name: 'DELETE the workspace root with a trailing slash', method: 'DELETE', url: '/files/workspace/', status: 403, code: 'PERMISSION_DENIED' },
  { name: 'DELETE literal .. escape', method: 'DELETE', url: '/files/workspace/../outside/secret.txt', raw: true, status: 400, code: 'INVALID_PATH' },
  { name: 'DELETE absolute path outside', method: 'DELETE', url: '/files/outside', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'DELETE through a symlinked folder outside', method: 'DELETE', url: '/files/workspace/link-dir/secret.txt', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'DELETE through a nested ../.. symlink', method: 'DELETE', url: '/files/workspace/sub/up/outside', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  {
    name: 'DELETE a symlink to a folder outside removes only the link',
    method: 'DELETE',
    url: '/files/workspace/link-dir',
    status: 200,
    check: async (ws) => expect(await exists(ws('link-dir'))).toBe(false),
  },
  {
    name: 'DELETE a dangling symlink removes only the link',
    method: 'DELETE',
    url: '/files/workspace/dangling',
    status: 200,
    check: async (ws) => expect(await exists(ws('dangling'))).toBe(false),
  },
  {
    name: 'DELETE a hard link removes only the workspace name',
    method: 'DELETE',
    url: '/files/workspace/hard.txt',
    status: 200,
    check: async (ws) => expect(await exists(ws('hard.txt'))).toBe(false),
  },
  {
    name: 'DELETE a folder holding links outside does not follow them',
    method: 'DELETE',
    url: '/files/workspace/sub',
    status: 200,
    check: async (ws) => expect(await exists(ws('sub'))).toBe(false),
  },

  // Listing
  { name: 'list /workspace/../outside', method: 'GET', url: '/files?path=/workspace/../outside', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list relative ../outside', method: 'GET', url: '/files?path=../outside', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list the filesystem root', method: 'GET', url: '/files?path=/', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list a symlinked folder outside', method: 'GET', url: '/files?path=/workspace/link-dir', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list through a nested ../.. symlink', method: 'GET', url: '/files?path=/workspace/sub/up', status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list a NUL byte', method: 'GET', url: '/files?path=%00', status: 400, code: 'INVALID_PATH' },
  { name: 'list an empty path', method: 'GET', url: '/files?path=', status: 400, code: 'VALIDATION' },
  { name: 'list a symlink loop', method: 'GET', url: '/files?path=/workspace/loop', status: 400, code: 'INVALID_PATH' },
  { name: 'list deeper than allowed', method: 'GET', url: '/files?depth=11', status: 400, code: 'VALIDATION' },

  // mkdir
  { name: 'mkdir inside a symlinked folder outside', ...mkdirReq({ path: '/workspace/link-dir/new' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir ../outside/new', ...mkdirReq({ path: '../outside/new' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir an absolute path outside', ...mkdirReq({ path: '/tmp/runner-hostile' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir through a dangling symlink', ...mkdirReq({ path: '/workspace/dangling/x' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir through a nested ../.. symlink', ...mkdirReq({ path: 'sub/up/outside/x' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir a NUL byte', ...mkdirReq({ path: 'a\u0000b' }), status: 400, code: 'INVALID_PATH' },
  { name: 'mkdir a path of the wrong type', ...mkdirReq({ path: 5 }), status: 400, code: 'VALIDATION' },
  { name: 'mkdir without a path', ...mkdirReq({}), status: 400, code: 'VALIDATION' },

  // move
  { name: 'move a file into a symlinked folder outside', ...moveReq({ from: 'ok.txt', to: 'link-dir/ok.txt' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move a file out of a symlinked folder outside', ...moveReq({ from: 'link-dir/secret.txt', to: 'stolen.txt' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move ../outside into the workspace', ...moveReq({ from: '../outside/secret.txt', to: 'x' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move through a nested ../.. symlink', ...moveReq({ from: 'ok.txt', to: 'sub/up/outside/x' }), status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move the workspace root', ...moveReq({ from: '/workspace', to: 'x' }), status: 403, code: 'PERMISSION_DENIED' },
  { name: 'move onto the workspace root', ...moveReq({ from: 'ok.txt', to: '/workspace', overwrite: true }), status: 403, code: 'PERMISSION_DENIED' },
  { name: 'move without a target', ...moveReq({ from: 'ok.txt' }), status: 400, code: 'VALIDATION' },
  { name: 'move with a string for overwrite', ...moveReq({ from: 'ok.txt', to: 'x', overwrite: 'yes' }), status: 400, code: 'VALIDATION' },
  {
    name: 'move a symlink pointing outside moves only the link',
    ...moveReq({ from: 'link-file', to: 'moved-link' }),
    status: 200,
    check: async (ws) => expect(await readlink(ws('moved-link'))).toMatch(/outside\/secret\.txt$/),
  },
  {
    name: 'move over a symlink pointing outside replaces the link, not its target',
    ...moveReq({ from: 'ok.txt', to: 'link-file', overwrite: true }),
    status: 200,
    check: async (ws) => expect(await readFile(ws('link-file'), 'utf8')).toBe('ok'),
  },
  {
    name: 'move over a dangling symlink does not create its target',
    ...moveReq({ from: 'ok.txt', to: 'dangling', overwrite: true }),
    status: 200,
    check: async (ws) => expect((await lstat(ws('dangling'))).isFile()).toBe(true),
  },
];

/** The error code of an answer; none for a file's bytes or a listing. */
function codeOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { code?: string }).code;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Everything observable about a tree except access times and link counts, which reading and unlinking may change. */
async function snapshot(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    const info = await lstat(path);
    const head = `${path} ${info.mode.toString(8)} ${info.uid}:${info.gid} ${info.mtimeMs}`;
    if (info.isSymbolicLink()) lines.push(`${head} -> ${await readlink(path)}`);
    else if (info.isDirectory()) lines.push(`${head}/`, ...(await snapshot(path)));
    else lines.push(`${head} ${(await readFile(path)).toString('base64')}`);
  }
  return lines;
}

describe('hostile paths and bodies', () => {
  let agent: TestAgent;
  let http: Client;
  const ws = (...parts: string[]): string => join(agent.workspace, ...parts);
  // The folder holding the workspace and `outside`: nothing may appear in it either.
  const observeOutside = async (): Promise<string[]> => [
    ...(await readdir(dirname(agent.workspace))).sort(),
    ...(await snapshot(agent.outside)),
  ];

  beforeAll(async () => {
    agent = await createTestAgent({ AGENT_BODY_LIMIT_BYTES: '65536' });
    await agent.app.listen({ host: '127.0.0.1', port: 0 });
    http = new Client(`http://127.0.0.1:${(agent.app.server.address() as { port: number }).port}`);
  });
  afterAll(async () => {
    await http?.close();
    await agent?.close();
  });

  beforeEach(async () => {
    for (const dir of [agent.workspace, agent.outside]) {
      for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
    }
    const secret = join(agent.outside, 'secret.txt');
    await writeFile(secret, 'top secret\n');
    await chmod(secret, 0o600);
    await mkdir(join(agent.outside, 'dir'));
    await writeFile(join(agent.outside, 'dir', 'inner.txt'), 'inner');
    await writeFile(ws('ok.txt'), 'ok');
    await mkdir(ws('sub'));
    await symlink('../..', ws('sub', 'up'));
    await symlink(secret, ws('link-file'));
    await symlink(agent.outside, ws('link-dir'));
    await symlink('../outside/secret.txt', ws('rel-out'));
    await symlink(join(agent.outside, 'missing.txt'), ws('dangling'));
    await link(secret, ws('hard.txt'));
    await symlink('loop', ws('loop'));
  });

  /** Sends a case as a client would and returns what came back. */
  const send = async (c: HostileCase): Promise<{ status: number; code?: string }> => {
    const headers: Record<string, string> = { ...c.headers };
    let payload: string | Buffer | undefined;
    if (Buffer.isBuffer(c.body)) {
      payload = c.body;
      headers['content-type'] = 'application/octet-stream';
    } else if (typeof c.body === 'object') {
      payload = JSON.stringify(c.body);
      headers['content-type'] = 'application/json';
    } else payload = c.body;
    if (c.raw) {
      const res = await http.request({ method: c.method, path: c.url, headers, body: payload });
      return { status: res.statusCode, code: codeOf(await res.body.text()) };
    }
    const res = await agent.app.inject({ method: c.method, url: c.url, headers, ...(payload === undefined ? {} : { payload }) });
    return { status: res.statusCode, code: codeOf(res.body) };
  };

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await observeOutside();
    expect(await send(c)).toEqual({ status: c.status, code: c.code });
    expect(await observeOutside()).toEqual(before);
    expect(await readFile(join(agent.outside, 'secret.txt'), 'utf8')).toBe('top secret\n');
    await c.check?.(ws);
  });

  // Each refusal checks before it acts: requests racing one another get the answers they get alone.
  const refused = cases.filter((c) => c.status >= 400);
  it(`refuses the ${refused.length} refused requests sent all at once, each as when sent alone`, async () => {
    const before = await observeOutside();
    const answers = await Promise.all(refused.map(send));
    expect(answers.map((answer, i) => `${refused[i]!.name}: ${answer.status} ${answer.code}`)).toEqual(refused.map((c) => `${c.name}: ${c.status} ${c.code}`));
    expect(await observeOutside()).toEqual(before);
  });

  it('lists the whole workspace without entering folders outside', async () => {
    const before = await observeOutside();
    const res = await agent.app.inject({ url: '/files?depth=10' });
    expect(res.statusCode).toBe(200);
    const paths = res.json().entries.map((e: { path: string }) => e.path);
    expect(paths).toEqual([
      '/workspace/dangling',
      '/workspace/hard.txt',
      '/workspace/link-dir',
      '/workspace/link-file',
      '/workspace/loop',
      '/workspace/ok.txt',
      '/workspace/rel-out',
      '/workspace/sub',
      '/workspace/sub/up',
    ]);
    expect(await observeOutside()).toEqual(before);
  });
});
