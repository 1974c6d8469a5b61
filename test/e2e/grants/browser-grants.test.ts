import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Browser, Frame, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { GrantInput } from '../../../client/src/index.js';
import { openBrowserPage, type BrowserPage } from '../../helpers/browser-page.js';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';
import { runnerError } from '../../helpers/runner-error.js';

// Functions below run in the browser, and this test is compiled without the DOM's types (xterm.js's own would bring
// them): what they use of the page is declared here, as the platform's page and the lab's app (lab-app/app.js) give it.
interface PageSocket {
  readyState: number;
  binaryType: string;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}
interface PageElement {
  src: string;
  href: string;
  click(): void;
}
interface PageTerminal {
  open(element: PageElement): void;
  loadAddon(addon: object): void;
  focus(): void;
  buffer: { active: { length: number; getLine(i: number): { translateToString(trimRight: boolean): string } | undefined } };
}
interface PageWindow {
  Terminal: new (options: { cols: number; rows: number }) => PageTerminal;
  AttachAddon: new (socket: PageSocket) => object;
  WebSocket: new (url: string) => PageSocket;
  term: PageTerminal;
  termSocket: PageSocket;
  termClosed: { code: number; reason: string } | null;
  /** What the lab's app found at its origin. */
  results?: { ws?: string; data: { cookie: string; forwarded_host: string } };
  appSocket: PageSocket;
}
declare const window: PageWindow;
/** The page's elements this test uses exist (its HTML above), so a lookup is not null. */
declare const document: { getElementById(id: string): PageElement };

const TOKEN = 'e2e-grants-token-0123456789abcdef';
const A = 'grants-a';
const B = 'grants-b';
const APP_PORT = 8080;
const WAIT = { timeout: 30_000, interval: 100 };
const LAB_APP = join(import.meta.dirname, 'lab-app');

/** The platform's own web server on http://platform.localhost:<port>: a page with xterm.js and an iframe. */
async function startPlatform(): Promise<{ server: Server; port: number }> {
  const bundle = await build({
    stdin: {
      contents: "import { Terminal } from '@xterm/xterm'; import { AttachAddon } from '@xterm/addon-attach'; Object.assign(window, { Terminal, AttachAddon });",
      resolveDir: process.cwd(),
    },
    bundle: true,
    format: 'iife',
    write: false,
  });
  const files: Record<string, [string, string]> = {
    '/': ['text/html', '<!doctype html><html><head><link rel="stylesheet" href="/xterm.css"><script src="/xterm.js"></script></head><body><div id="term"></div><iframe id="preview" width="600" height="200"></iframe><a id="download">download</a></body></html>'],
    '/xterm.js': ['text/javascript', bundle.outputFiles[0]!.text],
    '/xterm.css': ['text/css', await readFile(join(process.cwd(), 'node_modules/@xterm/xterm/css/xterm.css'), 'utf8')],
  };
  const server = createServer((req, res) => {
    const file = files[req.url ?? ''];
    res.writeHead(file ? 200 : 404, { 'content-type': file?.[0] ?? 'text/plain' }).end(file?.[1] ?? 'not found');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** A GET with the Host header given (fetch may not set one): how a preview origin is reached without DNS. */
function getWithHost(url: string, host: string, cookie?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { host, ...(cookie ? { cookie } : {}) } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket as a script would and says how it went: the first message, or why it never opened. */
async function tryWebSocket(url: string, origin: string): Promise<{ opened: boolean; status?: number; code?: string }> {
  const ws = new WebSocket(url, { headers: { origin } });
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve({ opened: false, status: res.statusCode, code: (JSON.parse(body) as { code: string }).code }));
    });
    ws.once('error', () => resolve({ opened: false }));
  });
}

describe.sequential('browser grants: terminal, preview origin, file link, in Chromium', () => {
  let ctl: E2EController;
  let platform: { server: Server; port: number };
  let platformOrigin: string;
  let chromium: BrowserPage;
  let browser: Browser;
  let page: Page;
  let downloads: string;

  // The platform's backend mints grants with the client; what the browser then does with them is raw on purpose.
  const grant = async (session: string, request: GrantInput) => {
    const granted = await ctl.client.session(session).createGrant(request);
    expect(ctl.lastResponse().status).toBe(201);
    return granted;
  };
  const previewFrame = async (): Promise<Frame> => {
    const handle = await page.$('#preview');
    return (await handle!.contentFrame())!;
  };

  beforeAll(async () => {
    await buildImages();
    platform = await startPlatform();
    platformOrigin = `http://platform.localhost:${platform.port}`;
    ctl = await startE2EController({
      RUNNER_API_TOKEN: TOKEN,
      PREVIEW_DOMAIN: 'preview.localhost',
      PREVIEW_HTTPS: 'false',
      RUNNER_ALLOWED_ORIGINS: platformOrigin,
    });
    for (const id of [A, B]) {
      await ctl.client.createSession({ session_id: id });
      expect(ctl.lastResponse().status).toBe(201);
    }

    // The learner's app, built and run inside session A's own Docker.
    const lab = ctl.client.session(A);
    for (const name of ['Dockerfile', 'serve.sh', 'app.js']) {
      await lab.writeFile(`/workspace/lab/${name}`, await readFile(join(LAB_APP, name), 'utf8'));
      expect(ctl.lastResponse().status).toBe(201);
    }
    await lab.build({ context_path: '/workspace/lab', image_tag: 'lab-app:1' });
    expect((await lab.run({ image: 'lab-app:1', name: 'lab', ports: [`${APP_PORT}:${APP_PORT}`] })).container_name).toBe('lab');
    // The ports route proxies the learner's app (its text, not the API's JSON): raw.
    await vi.waitFor(async () => expect((await ctl.request('GET', `/sessions/${A}/ports/${APP_PORT}/new`)).body).toBe('redirected ok'), WAIT);
    await lab.writeFile('/workspace/out/report.txt', 'the learner wrote this\n');
    expect(ctl.lastResponse().status).toBe(201);

    downloads = await mkdtemp(join(tmpdir(), 'grants-downloads-'));
    chromium = await openBrowserPage({ artifacts: 'grants' });
    ({ browser, page } = chromium);
    await page.goto(`${platformOrigin}/`);
  });

  afterAll(async () => {
    await chromium?.shoot('platform').catch(() => {});
    await chromium?.close();
    platform?.server.close();
    await ctl?.destroy();
    if (downloads) await rm(downloads, { recursive: true, force: true });
  });

  it('opens the terminal with xterm.js and the attach addon through a ticket, and shows a command’s output', async () => {
    const { url } = await grant(A, { capability: 'terminal' });
    expect(url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:\\d+/sessions/${A}/terminal/ws\\?ticket=`));
    await page.evaluate((ticketUrl) => {
      const w = window;
      const term = new w.Terminal({ cols: 100, rows: 20 });
      term.open(document.getElementById('term'));
      const ws = new window.WebSocket(ticketUrl);
      ws.binaryType = 'arraybuffer';
      w.termSocket = ws;
      w.termClosed = null;
      ws.onclose = (event: { code: number; reason: string }) => (w.termClosed = { code: event.code, reason: event.reason });
      term.loadAddon(new w.AttachAddon(ws));
      w.term = term;
      term.focus();
    }, url);
    await vi.waitFor(async () => expect(await page.evaluate(() => window.termSocket.readyState)).toBe(1), WAIT);
    await page.keyboard.type('echo grant-$((6*7))\n');
    const screen = () =>
      page.evaluate(() => {
        const buffer = window.term.buffer.active;
        return Array.from({ length: buffer.length }, (_, i) => buffer.getLine(i)?.translateToString(true) ?? '').join('\n');
      });
    await vi.waitFor(async () => expect(await screen()).toMatch(/^grant-42$/m), WAIT);
  });

  it('refuses the used ticket, another page’s Origin, a tampered ticket and another session’s ticket', async () => {
    const used = await grant(A, { capability: 'terminal' });
    expect(await tryWebSocket(used.url, platformOrigin)).toEqual({ opened: true });
    expect(await tryWebSocket(used.url, platformOrigin)).toEqual({ opened: false, status: 401, code: 'GRANT_USED' });

    const fresh = await grant(A, { capability: 'terminal' });
    expect(await tryWebSocket(fresh.url, 'http://evil.localhost:1')).toMatchObject({ opened: false, status: 403, code: 'GRANT_WRONG_ORIGIN' });
    // In the browser too: a page on another origin cannot open it.
    const evil = await browser.newPage();
    await evil.goto(`http://evil.localhost:${platform.port}/`);
    const opened = await evil.evaluate(
      (ticketUrl) => new Promise((resolve) => Object.assign(new window.WebSocket(ticketUrl), { onopen: () => resolve(true), onerror: () => resolve(false) })),
      fresh.url,
    );
    expect(opened).toBe(false);
    await evil.close();

    const tampered = await grant(A, { capability: 'terminal' });
    const flipped = tampered.url.replace(/ticket=([^&.]+)\.([^&.]+)\.([^&]+)/, (_m, v, claims: string, mac: string) => `ticket=${v}.${claims}.${mac.slice(0, -2)}AA`);
    expect(await tryWebSocket(flipped, platformOrigin)).toMatchObject({ opened: false, status: 401, code: 'GRANT_TAMPERED' });

    const other = await grant(B, { capability: 'terminal' });
    const onA = other.url.replace(`/sessions/${B}/`, `/sessions/${A}/`);
    expect(await tryWebSocket(onA, platformOrigin)).toMatchObject({ opened: false, status: 403, code: 'GRANT_WRONG_SESSION' });

    const short = await grant(A, { capability: 'terminal', ttl_seconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(await tryWebSocket(short.url, platformOrigin)).toMatchObject({ opened: false, status: 401, code: 'GRANT_EXPIRED' });
  });

  it('shows the app in an iframe on its own origin: absolute asset, redirect, fetch and WebSocket all work', async () => {
    const { url } = await grant(A, { capability: 'preview', port: APP_PORT });
    expect(url).toMatch(new RegExp(`^http://${APP_PORT}-${A}\\.preview\\.localhost:\\d+/__runner/auth\\?ticket=`));
    await page.evaluate((src) => void (document.getElementById('preview').src = src), url);
    await vi.waitFor(async () => {
      const frame = await previewFrame();
      expect(frame.url()).toMatch(new RegExp(`^http://${APP_PORT}-${A}\\.preview\\.localhost:\\d+/$`));
      expect(await frame.evaluate(() => window.results?.ws)).toBe('hello from ws');
    }, WAIT);
    const results = await (await previewFrame()).evaluate(() => window.results);
    expect(results).toMatchObject({ redirect: { url: '/new', text: 'redirected ok' }, asset: true, ws: 'hello from ws' });
    // The app sees neither the runner's cookie nor a Host the client made up.
    expect(results?.data.cookie).toBe('');
    expect(results?.data.forwarded_host).toBe(new URL(url).host);
    await chromium.shoot('preview');
  });

  it('keeps a script on the preview origin away from the controller’s API and other sessions’ previews', async () => {
    const frame = await previewFrame();
    const controllerUrl = ctl.url;
    const probes = await frame.evaluate(
      async (api: string, otherPreview: string) => {
        const attempt = async (target: string) => {
          try {
            const res = await fetch(target, { credentials: 'include' });
            return `${res.status} ${await res.text()}`;
          } catch (error) {
            return `blocked ${(error as Error).name}`;
          }
        };
        return { own: await attempt('/sessions'), api: await attempt(`${api}/sessions`), other: await attempt(otherPreview) };
      },
      controllerUrl,
      `http://${APP_PORT}-${B}.preview.localhost:${new URL(ctl.url).port}/`,
    );
    // Its own origin's /sessions is the app's, not the controller's.
    expect(probes.own).toBe('404 app: nothing at /sessions');
    expect(probes.api).toBe('blocked TypeError');
    expect(probes.other).toBe('blocked TypeError');
    // Without the browser's rules: no cookie of B's origin, and A's cookie does not pass there.
    const cookies = await page.browserContext().cookies();
    const cookie = cookies.find((c) => c.domain.startsWith(`${APP_PORT}-${A}.`))!;
    expect(cookie).toMatchObject({ httpOnly: true, name: 'runner_preview' });
    const port = new URL(ctl.url).port;
    const own = `runner_preview=${cookie.value}`;
    expect(await getWithHost(`${ctl.url}/`, `${APP_PORT}-${B}.preview.localhost:${port}`, own)).toMatchObject({ status: 403, body: { code: 'GRANT_WRONG_SESSION' } });
    expect(await getWithHost(`${ctl.url}/`, `9090-${A}.preview.localhost:${port}`, own)).toMatchObject({ status: 403, body: { code: 'GRANT_WRONG_PORT' } });
    // The API's own token opens nothing on a preview origin.
    expect(await getWithHost(`${ctl.url}/sessions`, `${APP_PORT}-${A}.preview.localhost:${port}`)).toMatchObject({ status: 401, body: { code: 'GRANT_MISSING' } });
  });

  it('refuses a preview sign-in link for another port and a used one', async () => {
    const { url } = await grant(A, { capability: 'preview', port: APP_PORT });
    const port = new URL(ctl.url).port;
    const direct = url.replace(/^http:\/\/[^/]+/, ctl.url);
    expect(await getWithHost(direct, `9090-${A}.preview.localhost:${port}`)).toMatchObject({ status: 403, body: { code: 'GRANT_WRONG_PORT' } });
    expect(await getWithHost(direct, new URL(url).host)).toMatchObject({ status: 303 });
    expect(await getWithHost(direct, new URL(url).host)).toMatchObject({ status: 401, body: { code: 'GRANT_USED' } });
  });

  it('downloads a workspace file through a file link, as an attachment, more than once', async () => {
    const { url, expires_at } = await grant(A, { capability: 'file', path: '/workspace/out/report.txt' });
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(300_000);
    for (let i = 0; i < 2; i += 1) {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="report.txt"/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.text()).toBe('the learner wrote this\n');
    }
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.evaluate((href) => {
      const link = document.getElementById('download');
      link.href = href;
      link.click();
    }, url);
    await vi.waitFor(async () => expect(await readdir(downloads)).toContain('report.txt'), WAIT);
    expect(await readFile(join(downloads, 'report.txt'), 'utf8')).toBe('the learner wrote this\n');

    const outside = await runnerError(ctl.client.session(A).createGrant({ capability: 'file', path: '/workspace/../etc/shadow' }));
    expect(outside).toMatchObject({ status: 403, code: 'PATH_OUTSIDE_WORKSPACE' });
  });

  it('revokes: the open terminal and the preview’s socket close, and every earlier grant is refused', async () => {
    const fileLink = await grant(A, { capability: 'file', path: '/workspace/out/report.txt' });
    const ticket = await grant(A, { capability: 'terminal' });
    const frame = await previewFrame();
    expect(await frame.evaluate(() => window.appSocket.readyState)).toBe(1);

    expect(await ctl.client.session(A).revokeGrants()).toEqual({ session_id: A, revoked: true });
    expect(ctl.lastResponse().status).toBe(200);

    await vi.waitFor(async () => expect(await page.evaluate(() => window.termClosed)).toMatchObject({ code: 4401 }), WAIT);
    await vi.waitFor(async () => expect(await frame.evaluate(() => window.appSocket.readyState)).toBe(3), WAIT);
    const afterRevoke = await frame.evaluate(async () => {
      const res = await fetch('/api/data');
      return { status: res.status, body: await res.json() };
    });
    expect(afterRevoke).toEqual({ status: 401, body: expect.objectContaining({ code: 'GRANT_REVOKED' }) });
    const file = await fetch(fileLink.url);
    expect(file.status).toBe(401);
    expect(await file.json()).toMatchObject({ code: 'GRANT_REVOKED' });
    expect(await tryWebSocket(ticket.url, platformOrigin)).toMatchObject({ opened: false, status: 401, code: 'GRANT_REVOKED' });
    // Grants minted after the revocation work.
    expect(await tryWebSocket((await grant(A, { capability: 'terminal' })).url, platformOrigin)).toEqual({ opened: true });
  });

  it('a session deleted closes what its grants opened, and made again under the same id never honours them', async () => {
    const fileLink = await grant(B, { capability: 'file', path: '/workspace/x.txt' });
    const ticket = await grant(B, { capability: 'terminal' });
    const open = new WebSocket((await grant(B, { capability: 'terminal' })).url, { headers: { origin: platformOrigin } });
    await once(open, 'open');
    const closed = once(open, 'close');
    expect(await ctl.client.deleteSession(B)).toMatchObject({ session_id: B, found: true });
    expect(ctl.lastResponse().status).toBe(200);
    expect((await closed)[0]).toBe(4401);
    await ctl.client.createSession({ session_id: B });
    expect(ctl.lastResponse().status).toBe(201);
    const file = await fetch(fileLink.url);
    expect(file.status).toBe(401);
    expect(await file.json()).toMatchObject({ code: 'GRANT_REVOKED' });
    expect(await tryWebSocket(ticket.url, platformOrigin)).toMatchObject({ opened: false, status: 401, code: 'GRANT_REVOKED' });
  });
});
