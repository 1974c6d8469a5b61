import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { RunnerClient, RunnerError, type SessionClient, type WatchFrame } from '../../../client/src/index.js';
import { attachTerminal } from '../../../client/src/node.js';
import { CONTROLLER_TEST_TOKEN } from '../../helpers/controller-fakes.js';
import { createClientStack, type ClientStack } from '../../helpers/client-stack.js';
import type { TestAgent } from '../../helpers/test-agent.js';

const SESSION = 'client1';

describe('the typed client, through a controller to a real agent', () => {
  let stack: ClientStack;
  let agent: TestAgent;
  let session: SessionClient;
  beforeAll(async () => {
    stack = await createClientStack();
    const created = await stack.client.createSession({ session_id: SESSION, ttl_seconds: 600 });
    expect(created).toMatchObject({ session_id: SESSION, status: 'running' });
    agent = await stack.startAgent(SESSION);
    session = stack.client.session(SESSION);
  });
  afterAll(async () => stack?.close());

  it('gets, lists and extends sessions', async () => {
    expect((await stack.client.getSession(SESSION)).session_id).toBe(SESSION);
    expect((await stack.client.listSessions()).map((s) => s.session_id)).toEqual([SESSION]);
    const before = Date.parse((await stack.client.getSession(SESSION)).expires_at);
    const extended = await stack.client.extendSession(SESSION, 1200);
    expect(Date.parse(extended.expires_at)).toBeGreaterThan(before);
    expect((await stack.client.health()).active_sessions).toBe(1);
  });

  it('throws one error class carrying the code and the status', async () => {
    const missing = await stack.client.getSession('nope').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(RunnerError);
    expect(missing).toMatchObject({ code: 'SESSION_NOT_FOUND', status: 404 });
    await expect(stack.client.createSession({ session_id: 'Not Valid' })).rejects.toMatchObject({ code: 'VALIDATION', status: 400 });
    await expect(session.readText('/etc/passwd')).rejects.toMatchObject({ code: 'PATH_OUTSIDE_WORKSPACE', status: 403 });
    const stranger = new RunnerClient({ baseUrl: stack.url, token: 'wrong-token-0123456789abcdef' });
    await expect(stranger.listSessions()).rejects.toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
  });

  it('writes, reads, lists, moves and deletes files, names with spaces and accents included', async () => {
    expect(await session.writeFile('notes/día uno.txt', 'hola\n')).toEqual({ path: '/workspace/notes/día uno.txt', size: 5 });
    expect(await readFile(join(agent.workspace, 'notes/día uno.txt'), 'utf8')).toBe('hola\n');
    expect(await session.readText('/workspace/notes/día uno.txt')).toBe('hola\n');
    expect(await session.readFile('notes/día uno.txt')).toMatchObject({ encoding: 'utf-8', content: 'hola\n' });

    const bytes = Uint8Array.from([0, 255, 1, 254, 10]);
    await session.writeFile('bin/blob', bytes);
    expect(await session.readBytes('bin/blob')).toEqual(bytes);
    expect(await session.readFile('bin/blob')).toMatchObject({ encoding: 'base64', content: Buffer.from(bytes).toString('base64') });

    expect(await session.mkdir('/workspace/a/b')).toEqual({ path: '/workspace/a/b' });
    expect(await session.move({ from: 'notes/día uno.txt', to: 'a/b/moved.txt' })).toEqual({ from: '/workspace/notes/día uno.txt', to: '/workspace/a/b/moved.txt' });
    const listing = await session.listFiles('/workspace', 3);
    expect(listing.entries.map((entry) => entry.path)).toEqual(expect.arrayContaining(['/workspace/a/b/moved.txt', '/workspace/bin/blob']));
    expect(await session.deleteFile('a')).toEqual({ path: '/workspace/a' });
    await expect(session.readText('a/b/moved.txt')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
  });

  it('runs a command, and streams one as an async iterator ending with its exit', async () => {
    const result = await session.exec({ command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(result).toMatchObject({ exit_code: 3, stdout: 'out\n', stderr: 'err\n' });

    const frames = [];
    for await (const frame of session.execStream({ command: ['sh', '-c', 'echo one; echo two'] })) frames.push(frame);
    const stdout = frames.flatMap((frame) => (frame.type === 'stdout' ? [frame.data] : [])).join('');
    expect(stdout).toBe('one\ntwo\n');
    expect(frames.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
  });

  it('ends a stream when the caller stops reading', async () => {
    // A sleep no other test on the host runs: this agent's execs see every process of the machine.
    const sleep = `sleep 30.${process.pid}`;
    for await (const frame of session.execStream({ command: ['sh', '-c', `echo first; ${sleep}; echo never`] })) {
      expect(frame).toEqual({ type: 'stdout', data: 'first\n' });
      break;
    }
    // The agent kills the command once its client is gone: nothing of it is left running.
    await vi.waitFor(async () => expect((await session.exec({ command: ['pgrep', '-f', sleep] })).exit_code).toBe(1), { timeout: 10_000 });
  });

  it('watches the workspace as an async iterator', async () => {
    const abort = new AbortController();
    const seen: WatchFrame[] = [];
    const watching = (async () => {
      for await (const frame of session.watch({ signal: abort.signal })) {
        seen.push(frame);
        if (frame.type === 'ready') await writeFile(join(agent.workspace, 'watched.txt'), 'x');
        if (frame.type !== 'ready' && frame.type !== 'error' && frame.path === 'watched.txt') break;
      }
    })();
    await watching;
    abort.abort();
    expect(seen[0]).toEqual({ type: 'ready' });
    expect(seen.at(-1)).toMatchObject({ path: 'watched.txt', kind: 'file' });
  });

  it('attaches a terminal as a Node duplex, and reattaches to the same shell with its scrollback', async () => {
    const first = await attachTerminal(session, stack.client.transport.authHeaders(), { cols: 100, rows: 30 });
    expect(first.id).not.toBe('');
    let output = '';
    first.stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    first.stream.write('echo marker-$((40 + 2))\n');
    await vi.waitFor(() => expect(output).toContain('marker-42'), { timeout: 10_000 });
    first.stream.destroy();
    await first.closed;

    const again = await attachTerminal(session, stack.client.transport.authHeaders(), { id: first.id });
    let replay = '';
    again.stream.on('data', (chunk: Buffer) => (replay += chunk.toString('utf8')));
    await vi.waitFor(() => expect(replay).toContain('marker-42'), { timeout: 10_000 });
    expect((await session.terminals()).terminals.map((t) => t.id)).toContain(first.id);
    await session.killTerminal(first.id);
    expect(await again.closed).toMatchObject({ code: 1000 });
  });

  it('refuses a terminal without the token as a RunnerError', async () => {
    await expect(attachTerminal(session, {}, {})).rejects.toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
  });

  it("opens a browser's terminal with a ticket it mints, from the controller's own origin, and reattaches with a new one", async () => {
    const host = new URL(stack.url).host;
    const opened: string[] = [];
    // A browser's WebSocket on a page of the controller's own origin (the console): it sets Origin, never Authorization.
    class PageWebSocket extends WebSocket {
      constructor(url: URL) {
        super(url, { headers: { origin: `http://${host}` } });
        this.once('upgrade', () => opened.push(String(url)));
      }
    }
    vi.stubGlobal('WebSocket', PageWebSocket);
    try {
      const first = (await session.openTerminalSocket({ id: 'page1', cols: 90, rows: 20 })) as unknown as WebSocket;
      let output = '';
      first.on('message', (data: ArrayBuffer) => (output += Buffer.from(data).toString('utf8')));
      await once(first, 'open');
      first.send('echo page-$((40 + 2))\n');
      await vi.waitFor(() => expect(output).toContain('page-42'), { timeout: 10_000 });
      first.close();
      await once(first, 'close');

      const again = (await session.openTerminalSocket({ id: 'page1' })) as unknown as WebSocket;
      let replay = '';
      again.on('message', (data: ArrayBuffer) => (replay += Buffer.from(data).toString('utf8')));
      await vi.waitFor(() => expect(replay).toContain('page-42'), { timeout: 10_000 });
      again.close();
    } finally {
      vi.unstubAllGlobals();
    }
    // Each socket had its own ticket in the URL, bound to the terminal; the token travelled in none.
    expect(opened.map((url) => new URL(url).searchParams.get('id'))).toEqual(['page1', 'page1']);
    const tickets = opened.map((url) => new URL(url).searchParams.get('ticket'));
    expect(tickets[0]).toMatch(/^g1\./);
    expect(tickets[1]).not.toBe(tickets[0]);
    expect(opened.join(' ')).not.toContain(CONTROLLER_TEST_TOKEN);
    await session.killTerminal('page1');
  });

  it('no longer takes the token as a WebSocket subprotocol, even from its own origin', async () => {
    const host = new URL(stack.url).host;
    const carrier = `runner.bearer.${Buffer.from(CONTROLLER_TEST_TOKEN).toString('base64url')}`;
    const socket = new WebSocket(session.terminalUrl(), ['runner.v1', carrier], { origin: `http://${host}` });
    socket.on('error', () => {});
    const [request, response] = (await once(socket, 'unexpected-response')) as [{ destroy(): void }, { statusCode: number }];
    request.destroy();
    expect(response.statusCode).toBe(401);
  });

  it('mints a file link a browser opens without the token, and revokes it', async () => {
    await session.writeFile('report.txt', 'for the browser\n');
    const grant = await session.createGrant({ capability: 'file', path: '/workspace/report.txt' });
    expect(grant).toMatchObject({ capability: 'file', url: expect.stringContaining('/download') });
    const link = new URL(grant.url);
    const download = await fetch(`${stack.url}${link.pathname}${link.search}`);
    expect(await download.text()).toBe('for the browser\n');
    expect(await session.revokeGrants()).toEqual({ session_id: SESSION, revoked: true });
    expect((await fetch(`${stack.url}${link.pathname}${link.search}`)).status).toBe(401);
  });

  it('deletes the session, idempotently', async () => {
    expect(await stack.client.deleteSession(SESSION)).toEqual({ session_id: SESSION, status: 'deleted', found: true });
    expect(await stack.client.deleteSession(SESSION)).toEqual({ session_id: SESSION, status: 'deleted', found: false });
    await expect(session.exec({ command: ['true'] })).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
  });
});
