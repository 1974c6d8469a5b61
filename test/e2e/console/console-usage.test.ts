import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const ROOT = join(import.meta.dirname, '../../..');
const TOKEN = 'console-usage-token-0123456789abcdef';
const SESSION = 'console-usage';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe.sequential('the console’s sessions table with usage, in a real browser', () => {
  let controller: E2EController;
  let browser: Browser;
  let page: Page;
  let profile: string;

  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN, USAGE_TTL_SECONDS: '1' });
    await controller.client.createSession({ session_id: SESSION });
    profile = await mkdtemp(join(tmpdir(), 'console-usage-chromium-'));
    browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`], headless: true });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await controller?.destroy();
  });

  it('shows a running session’s memory of its limit, and its CPU as a share of a core once polled twice', async () => {
    await page.goto(`${controller.url}/console`);
    await page.type('::-p-aria([name="API token"])', TOKEN);
    await (await page.waitForSelector('::-p-aria([name="Sign in"][role="button"])'))!.click();
    const row = `tr[data-session="${SESSION}"]`;
    await page.waitForFunction(`/^\\d+ \\/ 1536 MiB$/.test(document.querySelector('${row} .memory')?.textContent ?? '')`, { timeout: 30_000 });
    // The table polls every 5 s: the second reading turns CPU seconds into a percentage.
    await page.waitForFunction(`/^\\d+ %$/.test(document.querySelector('${row} .cpu')?.textContent ?? '')`, { timeout: 30_000 });
    const headers = await page.$$eval('table.sessions th', (cells) => cells.filter((c) => !c.hidden).map((c) => c.textContent));
    expect(headers).toEqual(['Session', 'Status', 'Time left', 'Memory', 'CPU', 'Created', 'Actions']);
  }, 90_000);
});
