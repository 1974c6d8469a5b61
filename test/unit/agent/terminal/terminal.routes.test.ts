import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { AgentRoute } from '../../../../shared/routes.js';
import { TerminalCloseCode } from '../../../../shared/schemas/terminal.js';
import { createTestAgent, LEARNER_UID, type TestAgent } from '../../../helpers/test-agent.js';

/** A WebSocket client of one terminal that keeps every byte it received. */
class TerminalClient {
  readonly frames: Buffer[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.frames.push(data));
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(base: string, query = '', options: WebSocket.ClientOptions = {}): Promise<TerminalClient> {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${AgentRoute.terminalWs}${query}`, options);
    const client = new TerminalClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  text(): string {
    return Buffer.concat(this.frames).toString('utf8');
  }

  send(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** Waits until the output so far matches `pattern`, and returns the match. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return vi.waitFor(
      () => {
        const match = this.text().match(pattern);
        if (!match) throw new Error(`no ${pattern} in terminal output: ${JSON.stringify(this.text().slice(-500))}`);
        return match;
      },
      { timeout: timeoutMs, interval: 20 },
    );
  }

  /** Runs a command line and waits for its end marker; `"do""ne"` is typed so only the output matches `done`. */
  async run(command: string): Promise<string> {
    const start = this.text().length;
    const marker = `m${Math.random().toString(36).slice(2, 8)}`;
    this.send(`${command}; echo "${marker}""-end"\r`);
    await this.waitFor(new RegExp(`${marker}-end`));
    const output = this.text().slice(start);
    return output.slice(0, output.lastIndexOf(`${marker}-end`));
  }

  close(): void {
    this.ws.close();
  }
}

/** The output as lines, without terminal escape sequences and carriage returns. */
function lines(output: string): string[] {
  return output
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split('\n')
    .map((line) => line.replace(/\r/g, ''));
}

async function waitUntil(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  await vi.waitFor(async () => expect(await check(), `waiting for ${what}`).toBe(true), { timeout: 10_000, interval: 50 });
}

/** Whether `pid` is alive: a zombie waiting for its parent to reap it has ended. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Waits until the shell `pid` runs `command` in the foreground, so input typed next goes to that command. */
async function waitForChild(pid: number, command: string): Promise<void> {
  await waitUntil(async () => {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(' ').filter(Boolean);
    for (const child of children) {
      const comm = await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === command) return true;
    }
    return false;
  }, `${command} to start`);
}

describe('terminal', () => {
  let agent: TestAgent;
  let base: string;
  const clients: TerminalClient[] = [];

  async function start(env: Record<string, string> = {}): Promise<void> {
    agent = await createTestAgent(env);
    base = await agent.app.listen({ port: 0, host: '127.0.0.1' });
  }

  async function open(query = '', options: WebSocket.ClientOptions = {}): Promise<TerminalClient> {
    const client = await TerminalClient.open(base, query, options);
    clients.push(client);
    return client;
  }

  async function list(): Promise<{ id: string; pid: number; cols: number; rows: number; attached: number }[]> {
    const res = await agent.app.inject({ url: AgentRoute.terminals });
    expect(res.statusCode).toBe(200);
    return res.json().terminals;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.ws.terminate();
    await agent?.close();
  });

  it('runs bash as the learner in the workspace, without the agent environment', async () => {
    await start();
    process.env.RUNNER_TEST_SECRET = 'leaked';
    try {
      const term = await open();
      const output = await term.run('id -u; id -G; pwd; echo "secret=[${RUNNER_TEST_SECRET:-unset}] term=$TERM"');
      expect(lines(output)).toEqual(
        expect.arrayContaining([`${LEARNER_UID}`, `${LEARNER_UID}`, agent.workspace, 'secret=[unset] term=xterm-256color']),
      );
      expect(output).toMatch(new RegExp(`${LEARNER_UID}\r\n${LEARNER_UID}\r\n`));
    } finally {
      delete process.env.RUNNER_TEST_SECRET;
    }
  });

  it('names a generated id in the upgrade response and lists the terminal under it', async () => {
    await start();
    let upgradeId: string | undefined;
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${AgentRoute.terminalWs}`);
    ws.on('upgrade', (res) => (upgradeId = String(res.headers['x-terminal-id'])));
    await new Promise((resolve) => ws.once('open', resolve));
    const [terminal] = await list();
    expect(terminal).toMatchObject({ id: upgradeId, cols: 80, rows: 24, attached: 1 });
    ws.terminate();
  });

  it('resizes the pty at open and on request', async () => {
    await start();
    const term = await open('?id=sized&cols=100&rows=30');
    expect(lines(await term.run('stty size'))).toContain('30 100');

    const res = await agent.app.inject({ method: 'POST', url: '/terminals/sized/resize', payload: { cols: 120, rows: 40 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: 'sized', cols: 120, rows: 40, attached: 1 });
    expect(lines(await term.run('stty size'))).toContain('40 120');
  });

  it('replays the scrollback on reconnect, then live output from the same shell', async () => {
    await start();
    const first = await open('?id=again');
    const pid = (await first.run('echo "pid=$$"; echo "before""-leaving"')).match(/pid=(\d+)/)![1];
    first.close();
    await first.closed;

    const second = await open('?id=again');
    await second.waitFor(/before-leaving/);
    expect(second.frames[0]!.toString()).toContain('before-leaving');
    expect(await second.run('echo "pid=$$"')).toContain(`pid=${pid}`);
  });

  it('replays at most the configured scrollback', async () => {
    await start({ AGENT_TERMINAL_SCROLLBACK_BYTES: '4096' });
    const first = await open('?id=bounded');
    await first.run(`head -c 20000 /dev/zero | tr '\\0' x; echo; echo "last""-line"`);
    first.close();
    await first.closed;

    const second = await open('?id=bounded');
    await second.waitFor(/last-line/);
    expect(second.frames[0]!.length).toBeLessThanOrEqual(4096);
    expect(second.frames[0]!.toString()).toMatch(/x+\r\nlast-line/);
  });

  it('passes pasted JSON-looking text to the shell unchanged', async () => {
    await start();
    const term = await open();
    const [terminal] = await list();
    term.send('cat > paste.txt\r');
    await waitForChild(terminal!.pid, 'cat');
    term.send('{"type":"resize","cols":1}');
    term.send('\r\x04');
    await term.run('true');
    expect(await readFile(`${agent.workspace}/paste.txt`, 'utf8')).toBe('{"type":"resize","cols":1}\n');
    expect((await list())[0]).toMatchObject({ cols: 80, rows: 24 });
  });

  it('keeps UTF-8 characters split across input frames intact', async () => {
    await start();
    const term = await open();
    const [terminal] = await list();
    term.send('cat > split.txt\r');
    await waitForChild(terminal!.pid, 'cat');
    const text = Buffer.from('é😀');
    // Each frame ends inside a character: "é" is 2 bytes, the emoji 4.
    term.send(text.subarray(0, 1));
    term.send(text.subarray(1, 4));
    term.send(text.subarray(4));
    term.send('\r\x04');
    await term.run('true');
    expect(await readFile(`${agent.workspace}/split.txt`, 'utf8')).toBe('é😀\n');
  });

  it('delivers multibyte output intact however the pty splits it', async () => {
    await start();
    const term = await open();
    const output = await term.run(`printf 'é😀%.0s' $(seq 5000); echo`);
    expect(output).toContain('é😀'.repeat(5000));
    expect(output).not.toContain('\uFFFD');
  });

  it('sends output to every client attached to one terminal', async () => {
    await start();
    const a = await open('?id=shared');
    const b = await open('?id=shared');
    await a.run('echo "for""-both"');
    await b.waitFor(/for-both/);
    expect((await list())[0]).toMatchObject({ id: 'shared', attached: 2 });
  });

  it('runs several terminals at once, each its own shell', async () => {
    await start();
    const terms = await Promise.all([open('?id=one'), open('?id=two'), open('?id=three')]);
    const pids = await Promise.all(terms.map(async (term) => (await term.run('echo "pid=$$"')).match(/pid=(\d+)/)![1]));
    expect(new Set(pids).size).toBe(3);
    expect((await list()).map((t) => t.id).sort()).toEqual(['one', 'three', 'two']);
  });

  it('refuses a terminal beyond the maximum but still reattaches to running ones', async () => {
    await start({ AGENT_MAX_TERMINALS: '2' });
    await open('?id=a');
    await open('?id=b');
    const refused = await open('?id=c');
    const { code, reason } = await refused.closed;
    expect(code).toBe(TerminalCloseCode.tooManyTerminals);
    expect(reason).toMatch(/^TOO_MANY_TERMINALS: at most 2 terminals/);

    const again = await open('?id=a');
    expect(await again.run('echo "still""-here"')).toContain('still-here');
    expect(await list()).toHaveLength(2);
  });

  it('closes clients with the exit code when the shell exits, and forgets the terminal', async () => {
    await start();
    const term = await open('?id=leaving');
    term.send('exit 7\r');
    expect(await term.closed).toEqual({ code: 1000, reason: 'exit 7' });
    expect(await list()).toEqual([]);
  });

  it('ends a terminal on DELETE, with the jobs it started', async () => {
    await start();
    const term = await open('?id=doomed');
    const job = (await term.run('sleep 600 & echo "job=$!"')).match(/job=(\d+)/)![1];
    const res = await agent.app.inject({ method: 'DELETE', url: '/terminals/doomed' });
    expect(res.statusCode).toBe(204);
    expect((await term.closed).reason).toMatch(/^exit \d+$/);
    await waitUntil(async () => !(await isRunning(Number(job))), 'the background job to end');
    expect(await list()).toEqual([]);
  });

  it('ends a terminal nobody is attached to after the idle time', async () => {
    await start({ AGENT_TERMINAL_IDLE_SECONDS: '1' });
    const term = await open('?id=idle');
    const pid = Number((await term.run('echo "pid=$$"')).match(/pid=(\d+)/)![1]);
    term.close();
    await waitUntil(async () => (await list()).length === 0, 'the idle terminal to end');
    expect(await isRunning(pid)).toBe(false);
  });

  it('notices a dead peer and keeps the shell for a reattach', async () => {
    await start({ AGENT_KEEPALIVE_SECONDS: '1' });
    // A client that never answers pings looks like a peer whose network vanished.
    const silent = await open('?id=lost', { autoPong: false });
    const pid = (await silent.run('echo "pid=$$"')).match(/pid=(\d+)/)![1];
    expect((await silent.closed).code).toBe(1006);
    await waitUntil(async () => (await list())[0]?.attached === 0, 'the agent to detach the lost client');

    const back = await open('?id=lost');
    expect(await back.run('echo "pid=$$"')).toContain(`pid=${pid}`);
  });

  it('kills every shell and its jobs when the agent closes', async () => {
    await start();
    const term = await open();
    const output = await term.run('sleep 600 & echo "shell=$$ job=$!"');
    const [, shell, job] = output.match(/shell=(\d+) job=(\d+)/)!;
    await agent.app.close();
    expect(await isRunning(Number(shell))).toBe(false);
    // The signal is sent; the job dies when the kernel next schedules it.
    await waitUntil(async () => !(await isRunning(Number(job))), 'the background job to end');
  });

  it.each([
    ['an invalid id', `${AgentRoute.terminalWs}?id=no/slashes`],
    ['a size out of bounds', `${AgentRoute.terminalWs}?cols=0`],
  ])('refuses %s before the upgrade', async (_what, path) => {
    await start();
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${path}`);
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode!)));
    expect(status).toBe(400);
  });

  it('answers a plain HTTP request to the WebSocket routes with UPGRADE_REQUIRED', async () => {
    await start();
    for (const url of [AgentRoute.terminalWs, AgentRoute.watchWs]) {
      const res = await agent.app.inject({ url });
      expect(res.statusCode).toBe(426);
      expect(res.json().code).toBe('UPGRADE_REQUIRED');
    }
  });

  it('answers resize and DELETE of an unknown terminal with TERMINAL_NOT_FOUND, a bad size with VALIDATION', async () => {
    await start();
    const resize = await agent.app.inject({ method: 'POST', url: '/terminals/nope/resize', payload: { cols: 80, rows: 24 } });
    expect(resize.statusCode).toBe(404);
    expect(resize.json().code).toBe('TERMINAL_NOT_FOUND');
    const del = await agent.app.inject({ method: 'DELETE', url: '/terminals/nope' });
    expect(del.statusCode).toBe(404);
    await open('?id=real');
    const bad = await agent.app.inject({ method: 'POST', url: '/terminals/real/resize', payload: { cols: 5000, rows: 24 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('VALIDATION');
  });
});
