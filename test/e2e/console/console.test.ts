import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunnerClient } from '../../../client/src/index.js';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const ROOT = join(import.meta.dirname, '../../..');
const ARTIFACTS = join(ROOT, 'test-artifacts/console');
const TOKEN = 'console-e2e-token-0123456789abcdef';
const SESSION = 'console1';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe.sequential('the console in a real browser', () => {
  let controller: E2EController;
  let client: RunnerClient;
  let browser: Browser;
  let page: Page;
  let profile: string;
  const consoleErrors: string[] = [];
  const failedRequests: string[] = [];

  // Page-side checks are expressions evaluated in the browser (this project type-checks without the DOM library).
  const textOf = (selector: string) => `(document.querySelector(${JSON.stringify(selector)})?.innerText ?? document.querySelector(${JSON.stringify(selector)})?.textContent ?? '')`;
  const waitForText = (selector: string, pattern: string, timeout = 30_000) =>
    page.waitForFunction(`${textOf(selector)}.includes(${JSON.stringify(pattern)})`, { timeout });
  const TERMINAL = '.terminal-host:not([hidden]) .xterm-rows';
  const shoot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
  const clickButton = async (label: string, role = 'button') => {
    const button = await page.waitForSelector(`::-p-aria([name="${label}"][role="${role}"])`, { visible: true });
    await button!.click();
  };
  const selectTab = (label: string) => clickButton(label, 'tab');

  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
    await mkdir(ARTIFACTS, { recursive: true });
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN });
    client = controller.client;
    profile = await mkdtemp(join(tmpdir(), 'console-chromium-'));
    browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`], headless: true });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(String(error)));
    page.on('requestfailed', (request) => {
      // Leaving a session page ends its live changes stream on purpose.
      if (request.failure()?.errorText === 'net::ERR_ABORTED' && request.url().endsWith('/watch')) return;
      failedRequests.push(`${request.method()} ${request.url()} ${request.failure()?.errorText}`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400) failedRequests.push(`${response.request().method()} ${response.url()} ${response.status()}`);
    });
    page.on('dialog', (dialog) => void dialog.accept());
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await rm(profile, { recursive: true, force: true });
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

  it('deletes the session', async () => {
    await clickButton('Delete session');
    await page.waitForSelector('::-p-aria([name="Session id"])');
    await page.waitForFunction(`!document.querySelector('tr[data-session="${SESSION}"]')`);
    await expect(client.getSession(SESSION)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    await shoot('09-deleted');
  });

  it('logged no console error and no failed request', () => {
    expect({ consoleErrors, failedRequests }).toEqual({ consoleErrors: [], failedRequests: [] });
  });
});
