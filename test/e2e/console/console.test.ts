import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { HTTPRequest, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { RunnerClient } from '../../../client/src/index.js';
import { openBrowserPage, type BrowserPage } from '../../helpers/browser-page.js';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const ROOT = join(import.meta.dirname, '../../..');
const TOKEN = 'console-e2e-token-0123456789abcdef';
const SESSION = 'console1';

/** Opens a terminal ticket's URL as a page of `origin` would (none: not a browser), and says how it went. */
async function openTicket(url: string, origin?: string): Promise<{ opened: true } | { status: number; code: string }> {
  const socket = new WebSocket(url, origin === undefined ? {} : { origin });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      socket.close();
      resolve({ opened: true });
    });
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, code: (JSON.parse(body) as { code: string }).code }));
    });
    socket.once('error', reject);
  });
}

describe.sequential('the console in a real browser', () => {
  let controller: E2EController;
  let client: RunnerClient;
  let browser: BrowserPage;
  let page: Page;
  // What Chromium sent to open each WebSocket: its URL and handshake headers.
  const webSockets = new Map<string, { url: string; headers: Record<string, string> }>();

  // Page-side checks are expressions evaluated in the browser (this project type-checks without the DOM library).
  const textOf = (selector: string) => `(document.querySelector(${JSON.stringify(selector)})?.innerText ?? document.querySelector(${JSON.stringify(selector)})?.textContent ?? '')`;
  const waitForText = (selector: string, pattern: string, timeout = 30_000) =>
    page.waitForFunction(`${textOf(selector)}.includes(${JSON.stringify(pattern)})`, { timeout });
  const TERMINAL = '.terminal-host:not([hidden]) .xterm-rows';
  const shoot = (name: string) => browser.shoot(name);
  const clickButton = async (label: string, role = 'button') => {
    const button = await page.waitForSelector(`::-p-aria([name="${label}"][role="${role}"])`, { visible: true });
    await button!.click();
  };
  const selectTab = (label: string) => clickButton(label, 'tab');

  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN });
    client = controller.client;
    browser = await openBrowserPage({
      artifacts: 'console',
      // Leaving a session page ends its live changes stream on purpose.
      expectedFailure: (request) => request.failure()?.errorText === 'net::ERR_ABORTED' && request.url().endsWith('/watch'),
    });
    page = browser.page;
    page.on('dialog', (dialog) => void dialog.accept());
    const devtools = await page.createCDPSession();
    devtools.on('Network.webSocketCreated', ({ requestId, url }) => webSockets.set(requestId, { url, headers: {} }));
    devtools.on('Network.webSocketWillSendHandshakeRequest', ({ requestId, request }) => {
      const socket = webSockets.get(requestId);
      if (socket) socket.headers = request.headers;
    });
    await devtools.send('Network.enable');
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await controller?.destroy();
  });

  it('type-checks its browser code against the DOM library', async () => {
    await promisify(execFile)(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'controller/console/ui'], { cwd: ROOT });
  }, 120_000);

  it('signs in with the API token', async () => {
    await page.goto(`${controller.url}/console`);
    await page.waitForSelector('::-p-aria([name="API token"])');
    await shoot('01-sign-in');
    await page.type('::-p-aria([name="API token"])', TOKEN);
    await clickButton('Sign in');
    await page.waitForSelector('::-p-aria([name="Session id"])');
    expect(await page.evaluate('Object.keys(sessionStorage)')).toEqual(['runner.console.token']);
    expect(page.url()).not.toContain(TOKEN);
  });

  it('creates a session and shows it running with its time left', async () => {
    await page.type('::-p-aria([name="Session id"])', SESSION);
    await clickButton('Create session');
    // The create answers once the session runs; a poll in between may show it `creating` first.
    await page.waitForFunction(`document.querySelector('tr[data-session="${SESSION}"] .status')?.textContent === 'running'`, { timeout: 120_000 });
    const row = await page.$(`tr[data-session="${SESSION}"]`);
    expect(await row!.$eval('.time-left', (cell) => cell.textContent)).toMatch(/^(29|30)m \d\ds$/);
    await shoot('02-sessions');
  });

  it("runs docker in the session's terminal and shows its output", async () => {
    await page.click(`tr[data-session="${SESSION}"] a`);
    await page.waitForSelector('.terminal-host .xterm-rows');
    await waitForText('.terminal-state', 'connected');
    await page.click('.terminal-host:not([hidden]) .xterm');
    await page.keyboard.type('docker run --rm runner-busybox echo hello-console\n');
    // The output on a line of its own, not only the command line that asked for it.
    await page.waitForFunction(`/^hello-console/m.test(${textOf(TERMINAL)})`, { timeout: 60_000 });
    await shoot('03-terminal');
  });

  it('finds the same shell with its scrollback after a reload', async () => {
    await page.keyboard.type('export CONSOLE_MARK=same-shell\n');
    await page.reload();
    await waitForText('.terminal-state', 'connected');
    await page.waitForFunction(`/^hello-console/m.test(${textOf(TERMINAL)})`, { timeout: 30_000 });
    await page.click('.terminal-host:not([hidden]) .xterm');
    await page.keyboard.type('echo mark=$CONSOLE_MARK\n');
    await page.waitForFunction(`/^mark=same-shell/m.test(${textOf(TERMINAL)})`, { timeout: 30_000 });
    await shoot('04-terminal-after-reload');
  });

  it('opened each terminal socket with a ticket of its own for its terminal id, and never sent the token in one', async () => {
    const terminalId = (JSON.parse(String(await page.evaluate(`sessionStorage.getItem('runner.console.terminals.${SESSION}')`))) as string[])[0];
    const sockets = [...webSockets.values()].filter((socket) => socket.url.includes('/terminal/ws'));
    // The first page and the reloaded one: one socket each at least.
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    const tickets = sockets.map((socket) => new URL(socket.url).searchParams.get('ticket'));
    expect(new Set(tickets).size).toBe(sockets.length);
    for (const socket of sockets) {
      const url = new URL(socket.url);
      expect(url.searchParams.get('ticket')).toMatch(/^g1\./);
      expect(url.searchParams.get('id')).toBe(terminalId);
      expect(JSON.stringify(socket)).not.toContain(TOKEN);
      expect(Object.keys(socket.headers).map((name) => name.toLowerCase())).not.toContain('sec-websocket-protocol');
    }
  });

  it('creates and edits a file that exec then reads, with the change shown live', async () => {
    await selectTab('Files');
    await page.type('::-p-aria([name="New name"])', 'notes.txt');
    await clickButton('New file');
    await waitForText('.editor-title', '/workspace/notes.txt');
    await page.click('.editor');
    await page.keyboard.type('edited in the console\n');
    await clickButton('Save');
    await waitForText('.editor-pane [aria-live]', 'saved');
    const cat = await client.session(SESSION).exec({ command: ['cat', '/workspace/notes.txt'] });
    expect(cat.stdout).toBe('edited in the console\n');
    // A change made outside the page appears in the live list and in the tree.
    await client.session(SESSION).exec({ command: ['sh', '-c', 'echo from-exec > /workspace/outside.txt'] });
    await waitForText('.events', 'outside.txt');
    await page.waitForSelector('::-p-aria([name="File outside.txt"])');
    await shoot('05-files');
  });

  it('keeps what is typed while it reloads the open file after a change on disk', async () => {
    // notes.txt is open and saved. Its reload, after an exec changes it, is held until something has been typed.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    const hold = (request: HTTPRequest) => {
      if (!held && request.method() === 'GET' && request.url().endsWith('/files/workspace/notes.txt')) {
        held = true;
        void released.then(() => request.continue());
      } else void request.continue();
    };
    await page.setRequestInterception(true);
    page.on('request', hold);
    try {
      await client.session(SESSION).exec({ command: ['sh', '-c', 'echo from-disk > /workspace/notes.txt'] });
      await vi.waitFor(() => expect(held).toBe(true), { timeout: 20_000 });
      await page.click('.editor');
      await page.keyboard.type('typed meanwhile');
      release();
      await waitForText('.editor-pane [aria-live]', 'changed on disk');
      expect(await page.evaluate(`document.querySelector('.editor').value`)).toContain('typed meanwhile');
    } finally {
      release();
      page.off('request', hold);
      await page.setRequestInterception(false);
    }
  });

  it('lists the containers of the session with their logs, and previews a port', async () => {
    await client.session(SESSION).run({ image: 'runner-busybox', name: 'web', command: ['sh', '-c', 'echo hello > /tmp/index.html; echo serving; httpd -f -p 8080 -h /tmp'], ports: ['8080:8080'] });
    await selectTab('Containers');
    await clickButton('Logs of web');
    await waitForText('.logs', 'serving');
    await shoot('06-containers');
    await selectTab('Preview');
    await clickButton('Load');
    await waitForText('.preview-panel [aria-live]', 'HTTP 200');
    await shoot('07-preview');
  });

  it('is usable at a narrow width', async () => {
    await page.setViewport({ width: 420, height: 800 });
    await selectTab('Terminal');
    await shoot('08-narrow-session');
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await page.setViewport({ width: 1280, height: 800 });
  });

  it("takes a terminal ticket once, for its own terminal, from the controller's own origin or no browser, and not the token", async () => {
    const lab = client.session(SESSION);
    const own = new URL(controller.url).origin;
    const mint = async (terminalId = 'probe') => (await lab.createGrant({ capability: 'terminal', terminal_id: terminalId })).url;
    // Not listed in RUNNER_ALLOWED_ORIGINS: the console's own origin is accepted all the same, once.
    const ticket = await mint();
    expect(await openTicket(ticket, own)).toEqual({ opened: true });
    expect(await openTicket(ticket, own)).toEqual({ status: 401, code: 'GRANT_USED' });
    expect(await openTicket(await mint(), undefined)).toEqual({ opened: true });
    expect(await openTicket(await mint(), 'http://evil.example')).toEqual({ status: 403, code: 'GRANT_WRONG_ORIGIN' });
    expect(await openTicket(await mint(), 'null')).toEqual({ status: 403, code: 'GRANT_WRONG_ORIGIN' });
    expect(await openTicket((await mint()).replace('id=probe', 'id=other'), own)).toEqual({ status: 403, code: 'GRANT_WRONG_TERMINAL' });
    // The token where the console used to carry it, a WebSocket subprotocol, opens nothing now.
    const carrier = `runner.bearer.${Buffer.from(TOKEN).toString('base64url')}`;
    const viaProtocol = new WebSocket(`${own.replace('http', 'ws')}/sessions/${SESSION}/terminal/ws?id=probe`, ['runner.v1', carrier], { origin: own });
    viaProtocol.on('error', () => {});
    const [request, response] = (await once(viaProtocol, 'unexpected-response')) as [{ destroy(): void }, { statusCode: number }];
    request.destroy();
    expect(response.statusCode).toBe(401);
    await lab.killTerminal('probe');
  });

  it('deletes the session', async () => {
    await clickButton('Delete session');
    await page.waitForSelector('::-p-aria([name="Session id"])');
    await page.waitForFunction(`!document.querySelector('tr[data-session="${SESSION}"]')`);
    await expect(client.getSession(SESSION)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    await shoot('09-deleted');
  });

  it('logged no console error and no failed request', () => {
    const { consoleErrors, failedRequests } = browser;
    expect({ consoleErrors, failedRequests }).toEqual({ consoleErrors: [], failedRequests: [] });
  });

  // After the check above: what follows fails on purpose.
  it('says why a terminal cannot reconnect when its session is gone, and stops trying', async () => {
    const gone = `${SESSION}-gone`;
    await client.createSession({ session_id: gone });
    await page.goto(`${controller.url}/console#/sessions/${gone}`);
    await waitForText('.terminal-state', 'connected');
    await client.deleteSession(gone);
    await waitForText('.terminal-state', 'no ticket (SESSION_NOT_FOUND)');
    await waitForText('#banner', 'SESSION_NOT_FOUND');
    await shoot('12-terminal-session-gone');
  });
});
