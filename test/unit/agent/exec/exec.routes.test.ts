import { chmod, chown, mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExecFrame, ExecResult } from '../../../../shared/schemas/exec.js';
import { createTestAgent, LEARNER_UID, type TestAgent } from '../../../helpers/test-agent.js';

/** A `sleep` argument no other test or process uses, so /proc tells exactly whether that sleep still lives. */
const uniqueSleep = (): string => `${1000 + Math.floor(Math.random() * 9000)}.${Math.floor(Math.random() * 1e6)}`;

/** Pids of living (not zombie) processes whose argv is exactly `argv`. */
function livingProcesses(argv: string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === wanted; // a zombie's cmdline is empty
    } catch {
      return false;
    }
  });
}

const waitUntilGone = (...sleeps: string[]) =>
  vi.waitFor(() => expect(sleeps.flatMap((s) => livingProcesses(['sleep', s])), `sleep ${sleeps.join(', ')} to die`).toEqual([]), { timeout: 5_000 });
const waitUntilRunning = (s: string) => vi.waitFor(() => expect(livingProcesses(['sleep', s]), `sleep ${s} to start`).toHaveLength(1), { timeout: 5_000 });

const leftRunning: string[] = [];
afterEach(() => {
  for (const s of leftRunning.splice(0)) for (const pid of livingProcesses(['sleep', s])) process.kill(pid, 'SIGKILL');
});

describe('exec', () => {
  let agent: TestAgent;
  afterEach(async () => agent?.close());

  async function exec(body: object): Promise<{ status: number; body: ExecResult & { code?: string } }> {
    const res = await agent.app.inject({ method: 'POST', url: '/exec', payload: body });
    return { status: res.statusCode, body: res.json() };
  }

  it('runs the program directly with its arguments, no shell', async () => {
    agent = await createTestAgent();
    const { status, body } = await exec({ command: ['echo', 'hi', '$HOME', '*', '; rm -rf /'] });
    expect(status).toBe(200);
    expect(body).toMatchObject({ exit_code: 0, stdout: 'hi $HOME * ; rm -rf /\n', stderr: '', logs: ['hi $HOME * ; rm -rf /'] });
    expect(body).toMatchObject({ timed_out: false, truncated: false });
    expect(body.elapsed_seconds).toBeGreaterThanOrEqual(0);
  });

  it('returns the exit code, stderr, and both streams interleaved in logs', async () => {
    agent = await createTestAgent();
    const { body } = await exec({ command: ['sh', '-c', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; printf three; exit 3'] });
    expect(body).toMatchObject({ exit_code: 3, stdout: 'one\nthree', stderr: 'two\n', logs: ['one', 'two', 'three'] });
  });

  it('reports a death by signal as 128 + the signal number', async () => {
    agent = await createTestAgent();
    expect((await exec({ command: ['sh', '-c', 'kill -TERM $$'] })).body.exit_code).toBe(143);
  });

  it('runs as the learner uid and gid', async () => {
    agent = await createTestAgent();
    expect((await exec({ command: ['id', '-u'] })).body.stdout).toBe(`${LEARNER_UID}\n`);
    expect((await exec({ command: ['id', '-g'] })).body.stdout).toBe(`${LEARNER_UID}\n`);
  });

  it("merges env over the learner's clean environment and never passes on the agent's own", async () => {
    process.env.EXEC_TEST_AGENT_SECRET = 'must-not-leak';
    try {
      agent = await createTestAgent();
    } finally {
      delete process.env.EXEC_TEST_AGENT_SECRET;
    }
    const { body } = await exec({ command: ['env'], env: { GREETING: 'hello world', PATH: '/usr/bin:/bin' } });
    const vars = body.stdout.trim().split('\n');
    expect(vars).toEqual(expect.arrayContaining(['GREETING=hello world', 'PATH=/usr/bin:/bin', `HOME=${agent.config.learner.home}`]));
    expect(body.stdout).not.toContain('must-not-leak');
    expect(body.stdout).not.toMatch(/^(EXEC_TEST_|AGENT_|VITEST)/m);
  });

  it('runs in the workspace by default, in a /workspace subfolder, or in another absolute folder', async () => {
    agent = await createTestAgent();
    await mkdir(join(agent.workspace, 'app'));
    expect((await exec({ command: ['pwd'] })).body.stdout).toBe(`${agent.workspace}\n`);
    expect((await exec({ command: ['pwd'], workdir: '/workspace/app' })).body.stdout).toBe(`${agent.workspace}/app\n`);
    expect((await exec({ command: ['pwd'], workdir: 'app' })).body.stdout).toBe(`${agent.workspace}/app\n`);
    expect((await exec({ command: ['pwd'], workdir: agent.outside })).body.stdout).toBe(`${agent.outside}\n`);
  });

  it.each([
    ['/workspace/missing', 404, 'FILE_NOT_FOUND'],
    ['/workspace/file.txt', 409, 'NOT_A_DIRECTORY'],
    ['/workspace/file.txt/below', 404, 'FILE_NOT_FOUND'],
    ['/no/such/folder', 404, 'FILE_NOT_FOUND'],
    ['/workspace/escape', 403, 'PATH_OUTSIDE_WORKSPACE'],
  ])('refuses workdir %s with %i %s', async (workdir, status, code) => {
    agent = await createTestAgent();
    await writeFile(join(agent.workspace, 'file.txt'), 'x');
    await symlink(agent.outside, join(agent.workspace, 'escape'));
    const res = await exec({ command: ['touch', 'created'], workdir });
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(readdirSync(agent.outside)).toEqual([]);
  });

  it('writes stdin to the process and closes it; without stdin it reads /dev/null', async () => {
    agent = await createTestAgent();
    expect((await exec({ command: ['cat'], stdin: 'line 1\nline 2\n' })).body).toMatchObject({ stdout: 'line 1\nline 2\n', exit_code: 0 });
    expect((await exec({ command: ['cat'] })).body).toMatchObject({ stdout: '', exit_code: 0 });
    expect((await exec({ command: ['readlink', '/proc/self/fd/0'] })).body.stdout).toBe('/dev/null\n');
  });

  it('answers 127 and a message on stderr for a program that does not exist, 126 for one that cannot run', async () => {
    agent = await createTestAgent();
    const missing = await exec({ command: ['no-such-program-xyz', 'arg'] });
    expect(missing.status).toBe(200);
    expect(missing.body).toMatchObject({ exit_code: 127, stdout: '', stderr: 'no-such-program-xyz: command not found\n' });
    await writeFile(join(agent.workspace, 'script.sh'), '#!/bin/sh\necho ran\n', { mode: 0o644 });
    const notExecutable = await exec({ command: ['./script.sh'] });
    expect(notExecutable.body).toMatchObject({ exit_code: 126, stderr: './script.sh: permission denied\n' });
  });

  it('kills the whole process tree on timeout, including children that left the group', async () => {
    agent = await createTestAgent();
    const [a, b, c] = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
    leftRunning.push(a, b, c);
    const script = `sleep ${a} & setsid sleep ${b} & echo started; sleep ${c}`;
    const { body } = await exec({ command: ['sh', '-c', script], timeout_seconds: 1 });
    expect(body).toMatchObject({ timed_out: true, exit_code: 124, stdout: 'started\n' });
    await waitUntilGone(a, b, c);
  });

  it('caps the output, says so, and lets the process run to its end', async () => {
    agent = await createTestAgent({ AGENT_EXEC_OUTPUT_LIMIT_BYTES: '1000' });
    const { body } = await exec({ command: ['sh', '-c', 'yes | head -c 100000; echo more >&2; touch finished'] });
    expect(body).toMatchObject({ exit_code: 0, truncated: true, stderr: '', timed_out: false });
    expect(body.stdout).toBe('y\n'.repeat(500));
    expect(body.logs).toHaveLength(500);
    await expect(stat(join(agent.workspace, 'finished'))).resolves.toBeTruthy();
  });

  it('never splits a UTF-8 character, across chunks or at the cap', async () => {
    agent = await createTestAgent({ AGENT_EXEC_OUTPUT_LIMIT_BYTES: '4' });
    const split = await exec({ command: ['sh', '-c', "printf '\\342\\202'; sleep 0.2; printf '\\254'"] });
    expect(split.body).toMatchObject({ stdout: '€', truncated: false });
    const capped = await exec({ command: ['printf', '€€'] });
    expect(capped.body).toMatchObject({ stdout: '€', truncated: true });
  });

  it('answers soon after the command exits while a background child keeps running with its output', async () => {
    agent = await createTestAgent();
    const background = uniqueSleep();
    leftRunning.push(background);
    const { body } = await exec({ command: ['sh', '-c', `sleep ${background} & echo started`], timeout_seconds: 120 });
    expect(body).toMatchObject({ exit_code: 0, stdout: 'started\n', timed_out: false });
    expect(livingProcesses(['sleep', background])).toHaveLength(1);
  });

  it.each([
    ['no body', undefined],
    ['no command', {}],
    ['an empty command', { command: [] }],
    ['an empty program', { command: [''] }],
    ['a string command', { command: 'echo hi' }],
    ['a number argument', { command: ['echo', 1] }],
    ['a NUL byte in an argument', { command: ['echo', 'a\u0000b'] }],
    ['a NUL byte in the program', { command: ['ec\u0000ho'] }],
    ['a NUL byte in an env value', { command: ['env'], env: { A: 'x\u0000y' } }],
    ['an invalid env name', { command: ['env'], env: { 'A=B': 'x' } }],
    ['a number env value', { command: ['env'], env: { A: 1 } }],
    ['a NUL byte in workdir', { command: ['pwd'], workdir: '/workspace/a\u0000b' }],
    ['an empty workdir', { command: ['pwd'], workdir: '' }],
    ['a zero timeout', { command: ['true'], timeout_seconds: 0 }],
    ['a negative timeout', { command: ['true'], timeout_seconds: -5 }],
    ['a timeout above the maximum', { command: ['true'], timeout_seconds: 301 }],
    ['a string timeout', { command: ['true'], timeout_seconds: '10' }],
    ['a number stdin', { command: ['cat'], stdin: 5 }],
  ])('refuses %s with 400 VALIDATION', async (_name, body) => {
    agent = await createTestAgent();
    const res = await agent.app.inject({ method: 'POST', url: '/exec', ...(body === undefined ? {} : { payload: body }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toMatch(/^(VALIDATION|INVALID_JSON)$/);
  });
});

describe('exec over a real connection', () => {
  let agent: TestAgent;
  let base: string;
  afterEach(async () => agent?.close());

  async function listen(env: Record<string, string> = {}): Promise<void> {
    agent = await createTestAgent(env);
    await agent.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(agent.app.server.address() as AddressInfo).port}`;
  }

  /** Starts `POST /exec/stream` and yields its frames as they arrive. */
  async function* streamFrames(body: object, signal?: AbortSignal): AsyncGenerator<ExecFrame> {
    const res = await request(`${base}/exec/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    let pending = '';
    for await (const chunk of res.body) {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop()!;
      for (const line of lines) yield ExecFrame.parse(JSON.parse(line));
    }
    expect(pending).toBe('');
  }

  const collect = async (body: object): Promise<ExecFrame[]> => {
    const frames: ExecFrame[] = [];
    for await (const frame of streamFrames(body)) frames.push(frame);
    return frames;
  };

  it('streams stdout and stderr chunks in order, then the exit event', async () => {
    await listen();
    const frames = await collect({ command: ['sh', '-c', 'echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; exit 4'] });
    expect(frames).toEqual([
      { type: 'stdout', data: 'one\n' },
      { type: 'stderr', data: 'two\n' },
      { type: 'stdout', data: 'three\n' },
      { type: 'exit', exit_code: 4, timed_out: false, truncated: false, elapsed_seconds: expect.any(Number) },
    ]);
  });

  it('never splits a UTF-8 character across frames', async () => {
    await listen();
    const frames = await collect({ command: ['sh', '-c', "printf 'a\\342\\202'; sleep 0.2; printf '\\254b'"] });
    const text = frames.map((f) => (f.type === 'stdout' ? f.data : '')).join('');
    expect(text).toBe('a€b');
    expect(frames.some((f) => f.type === 'stdout' && f.data.includes('\uFFFD'))).toBe(false);
  });

  it('sends heartbeats while the command is silent', async () => {
    await listen({ AGENT_KEEPALIVE_SECONDS: '1' });
    const frames = await collect({ command: ['sleep', '2.5'] });
    expect(frames.filter((f) => f.type === 'heartbeat').length).toBeGreaterThanOrEqual(1);
    expect(frames.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
  });

  it('ends the stream with timed_out after killing the tree', async () => {
    await listen();
    const a = uniqueSleep();
    leftRunning.push(a);
    const frames = await collect({ command: ['sh', '-c', `sleep ${a} & sleep ${a}`], timeout_seconds: 1 });
    expect(frames.at(-1)).toMatchObject({ type: 'exit', exit_code: 124, timed_out: true });
    await waitUntilGone(a);
  });

  it('kills the process tree when the streaming client goes away', async () => {
    await listen();
    const [a, b] = [uniqueSleep(), uniqueSleep()];
    leftRunning.push(a, b);
    const client = new AbortController();
    const frames = streamFrames({ command: ['sh', '-c', `setsid sleep ${a} & echo started; sleep ${b}`] }, client.signal);
    expect((await frames.next()).value).toEqual({ type: 'stdout', data: 'started\n' });
    await waitUntilRunning(b);
    client.abort();
    await expect(frames.next()).rejects.toThrow();
    await waitUntilGone(a, b);
  });

  it('kills the process tree when the client of plain /exec goes away', async () => {
    await listen();
    const a = uniqueSleep();
    leftRunning.push(a);
    const client = new AbortController();
    const pending = request(`${base}/exec`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: ['sh', '-c', `sleep ${a}`] }),
      signal: client.signal,
    });
    pending.catch(() => {});
    await waitUntilRunning(a);
    client.abort();
    await waitUntilGone(a);
  });

  it('ends open streams with an exit event when the agent shuts down', async () => {
    await listen();
    const a = uniqueSleep();
    leftRunning.push(a);
    const frames = streamFrames({ command: ['sh', '-c', `echo started; sleep ${a}`] });
    expect((await frames.next()).value).toEqual({ type: 'stdout', data: 'started\n' });
    await waitUntilRunning(a);
    const closed = agent.app.close();
    expect((await frames.next()).value).toMatchObject({ type: 'exit', exit_code: 137 });
    expect((await frames.next()).done).toBe(true);
    await closed;
    await waitUntilGone(a);
  });

  it('refuses a bad request with a status and code before any streaming starts', async () => {
    await listen();
    const post = (body: object) => request(`${base}/exec/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const missing = await post({ command: ['pwd'], workdir: '/workspace/missing' });
    expect(missing.statusCode).toBe(404);
    expect(await missing.body.json()).toMatchObject({ code: 'FILE_NOT_FOUND' });
    const empty = await post({ command: [] });
    expect(empty.statusCode).toBe(400);
    expect(await empty.body.json()).toMatchObject({ code: 'VALIDATION' });
  });

  it('runs a learner-owned script in the workspace through the stream', async () => {
    await listen();
    const script = join(agent.workspace, 'hello.sh');
    await writeFile(script, '#!/bin/sh\necho "hello from $(id -u)"\n');
    await chmod(script, 0o755);
    await chown(script, LEARNER_UID, LEARNER_UID);
    const frames = await collect({ command: ['./hello.sh'] });
    expect(frames).toEqual([{ type: 'stdout', data: `hello from ${LEARNER_UID}\n` }, expect.objectContaining({ type: 'exit', exit_code: 0 })]);
  });
});
