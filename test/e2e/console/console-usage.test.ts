import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserPage, type BrowserPage } from '../../helpers/browser-page.js';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const ROOT = join(import.meta.dirname, '../../..');
const TOKEN = 'console-usage-token-0123456789abcdef';
const SESSION = 'console-usage';

describe.sequential('the console’s sessions table with usage, in a real browser', () => {
  let controller: E2EController;
  let browser: BrowserPage;
  let page: Page;

  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN, USAGE_TTL_SECONDS: '1' });
    await controller.client.createSession({ session_id: SESSION });
    browser = await openBrowserPage({ artifacts: 'console' });
    page = browser.page;
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
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
    await browser.shoot('11-sessions-usage');
  }, 90_000);

  it('logged no console error and no failed request', () => {
    const { consoleErrors, failedRequests } = browser;
    expect({ consoleErrors, failedRequests }).toEqual({ consoleErrors: [], failedRequests: [] });
  });
});
