import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { consoleRoutes } from '../../../../controller/console/console.routes.js';
import { createServer } from '../../../../core/http/server.js';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../../helpers/controller-fakes.js';

const ROOT = join(import.meta.dirname, '../../../..');

describe('the console', () => {
  let ctl: TestController | undefined;
  beforeAll(async () => {
    await promisify(execFile)('bash', ['scripts/build-console.sh'], { cwd: ROOT });
  }, 120_000);
  afterEach(async () => {
    await ctl?.close();
    ctl = undefined;
  });

  it('serves its page and files without the token, with a strict content security policy', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    const page = await ctl.app.inject({ url: '/console' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    for (const [, asset] of page.body.matchAll(/(?:src|href)="(\/console\/[^"]+)"/g)) {
      const res = await ctl.app.inject({ url: asset! });
      expect(res.statusCode, asset).toBe(200);
    }
    expect((await ctl.app.inject({ url: '/console/nothing.js' })).json().code).toBe('ROUTE_NOT_FOUND');
    // The page holds no data: the API it calls still needs the token.
    expect((await ctl.app.inject({ url: '/sessions' })).statusCode).toBe(401);
  });

  it('says whether previews open on origins of their own, and lets only those origins be framed', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    expect((await ctl.app.inject({ url: '/console/settings.json' })).json()).toEqual({ previews: false });
    expect((await ctl.app.inject({ url: '/console' })).headers['content-security-policy']).toContain("frame-src 'self';");
    await ctl.close();

    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN, PREVIEW_DOMAIN: 'preview.test', PREVIEW_HTTPS: 'true' });
    expect((await ctl.app.inject({ url: '/console/settings.json' })).json()).toEqual({ previews: true });
    expect((await ctl.app.inject({ url: '/console' })).headers['content-security-policy']).toContain("frame-src 'self' https://*.preview.test:*;");
  });

  it('says how to build it when it is not built', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'console-'));
    const app = createServer();
    try {
      await app.register(consoleRoutes, { assetsDir: empty });
      const res = await app.inject({ url: '/console' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ code: 'CONSOLE_NOT_BUILT', message: expect.stringContaining('scripts/build-console.sh') });
    } finally {
      await app.close();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
