import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Frame, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunnerClient } from '../../../client/src/index.js';
import { openBrowserPage, type BrowserPage } from '../../helpers/browser-page.js';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const ROOT = join(import.meta.dirname, '../../..');
const TOKEN = 'console-preview-token-0123456789abcdef';
const SESSION = 'consolepreview';
// A page whose script says where it ran: it runs only if the preview is the app itself, on its own origin.
const APP_PAGE = '<!doctype html><title>lab app</title><p id=out>no script ran</p><script>document.getElementById("out").textContent = "script ran on " + location.host</script>';

describe.sequential('the console previews a port on its own origin when previews are on', () => {
  let controller: E2EController;
  let client: RunnerClient;
  let browser: BrowserPage;
  let page: Page;
  let consoleUrl: string;

  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN, PREVIEW_DOMAIN: 'preview.localhost', PREVIEW_HTTPS: 'false' });
    client = controller.client;
    // The console on `localhost`, its previews on `{port}-{session}.preview.localhost`: different origins.
    consoleUrl = `${controller.url.replace('127.0.0.1', 'localhost')}/console`;
    await client.createSession({ session_id: SESSION });
    await client.session(SESSION).run({ image: 'runner-busybox', name: 'web', command: ['sh', '-c', `echo '${APP_PAGE}' > /tmp/index.html; httpd -f -p 8080 -h /tmp`], ports: ['8080:8080'] });
    browser = await openBrowserPage({
      artifacts: 'console',
      expectedFailure: (request) => request.failure()?.errorText === 'net::ERR_ABORTED' && request.url().endsWith('/watch'),
    });
    page = browser.page;
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await controller?.destroy();
  });

  it('runs the app with its scripts in a frame on the preview origin, not the console’s', async () => {
    await page.goto(consoleUrl);
    await page.type('::-p-aria([name="API token"])', TOKEN);
    await (await page.waitForSelector('::-p-aria([name="Sign in"][role="button"])'))!.click();
    await page.waitForSelector('::-p-aria([name="Session id"])');
    await page.goto(`${consoleUrl}#/sessions/${SESSION}`);
    await (await page.waitForSelector('::-p-aria([name="Preview"][role="tab"])', { visible: true }))!.click();
    await (await page.waitForSelector('::-p-aria([name="Load"][role="button"])', { visible: true }))!.click();

    const appFrame = async (): Promise<Frame> => {
      const frame = await (await page.waitForSelector('iframe.preview'))!.contentFrame();
      expect(frame).toBeTruthy();
      return frame!;
    };
    const origin = new RegExp(`^8080-${SESSION}\\.preview\\.localhost:\\d+$`);
    await vi.waitFor(async () => {
      const frame = await appFrame();
      expect(new URL(frame.url()).host).toMatch(origin);
      expect(await frame.evaluate('document.getElementById("out")?.textContent')).toMatch(/^script ran on /);
    }, { timeout: 30_000, interval: 250 });
    const ranOn = String(await (await appFrame()).evaluate('document.getElementById("out").textContent')).replace('script ran on ', '');
    expect(ranOn).toMatch(origin);
    // The frame's origin is not the console's: its script cannot read the console's page or its token.
    expect(await (await appFrame()).evaluate('(() => { try { return String(window.parent.sessionStorage.length); } catch { return "blocked"; } })()')).toBe('blocked');
    await browser.shoot('10-preview-own-origin');
  });

  it('logged no console error and no failed request', () => {
    const { consoleErrors, failedRequests } = browser;
    expect({ consoleErrors, failedRequests }).toEqual({ consoleErrors: [], failedRequests: [] });
  });
});
