import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type HTTPRequest, type Page } from 'puppeteer-core';

const ROOT = join(import.meta.dirname, '../..');
/** Debian's `chromium` package: no browser download. */
const CHROMIUM = '/usr/bin/chromium';
// Headless, and nothing of its own on the network (no updates, sync or QUIC probes) to show up as a failed request.
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface BrowserPageOptions {
  /** The folder below test-artifacts/ that screenshots go to (git-ignored: for a person to look at). */
  artifacts: string;
  viewport?: { width: number; height: number };
  /** A failed request the page makes on purpose (a stream it ends), not counted in `failedRequests`. */
  expectedFailure?: (request: HTTPRequest) => boolean;
}

/** One Chromium with one page, and what went wrong in it: the page's console errors and its failed requests. */
export interface BrowserPage {
  browser: Browser;
  page: Page;
  /** Errors the page logged, and exceptions it did not catch. */
  consoleErrors: string[];
  /** Requests that failed, or were answered with a status of 400 or more. */
  failedRequests: string[];
  /** Writes a screenshot of the viewport as `<artifacts>/<name>.png`. */
  shoot(name: string): Promise<void>;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Launches Chromium (headless, a throwaway profile) with a page that records its errors and failed requests. */
export async function openBrowserPage(options: BrowserPageOptions): Promise<BrowserPage> {
  const artifacts = join(ROOT, 'test-artifacts', options.artifacts);
  await mkdir(artifacts, { recursive: true });
  const profile = await mkdtemp(join(tmpdir(), 'runner-chromium-'));
  let browser: Browser;
  try {
    browser = await puppeteer.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`], headless: true });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
  const page = await browser.newPage();
  await page.setViewport(options.viewport ?? { width: 1280, height: 800 });

  const consoleErrors: string[] = [];
  const failedRequests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  page.on('requestfailed', (request) => {
    if (options.expectedFailure?.(request)) return;
    failedRequests.push(`${request.method()} ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) failedRequests.push(`${response.request().method()} ${response.url()} ${response.status()}`);
  });

  return {
    browser,
    page,
    consoleErrors,
    failedRequests,
    shoot: async (name) => {
      await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: false });
    },
    close: async () => {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
