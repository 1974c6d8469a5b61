import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerBearerAuth, type BearerAuthOptions } from '../../../../core/http/bearer-auth.js';
import { createServer } from '../../../../core/http/server.js';

const TOKEN = 'first-token-0123456789';
const NEW_TOKEN = 'second-token-0123456789';

describe('bearer auth', () => {
  let app: FastifyInstance | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function serve(options: BearerAuthOptions): Promise<FastifyInstance> {
    app = createServer();
    registerBearerAuth(app, options);
    app.get('/health', async () => ({ ok: true }));
    app.get('/things', async () => ({ ok: true }));
    return app;
  }
  const statusOf = async (url: string, token?: string): Promise<number> =>
    (await app!.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} })).statusCode;

  it('answers 401 UNAUTHORIZED without the token or with a wrong one, and serves it with the token', async () => {
    await serve({ token: TOKEN });
    const anonymous = await app!.inject({ url: '/things' });
    expect({ status: anonymous.statusCode, code: anonymous.json().code }).toEqual({ status: 401, code: 'UNAUTHORIZED' });
    expect(await statusOf('/things', `${TOKEN}x`)).toBe(401);
    expect(await statusOf('/nowhere')).toBe(401);
    expect(await statusOf('/things', TOKEN)).toBe(200);
  });

  it('serves public routes without a token, and only those', async () => {
    await serve({ token: TOKEN, publicRoutes: ['/health'] });
    expect(await statusOf('/health')).toBe(200);
    expect(await statusOf('/things')).toBe(401);
  });

  it('serves everyone when no token is set', async () => {
    await serve({ token: undefined });
    expect(await statusOf('/things')).toBe(200);
  });

  it('reads the token file again on a mismatch: the new token works, the old one no longer does', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bearer-'));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    await serve({ token: TOKEN, tokenFile });
    expect(await statusOf('/things', TOKEN)).toBe(200);
    await writeFile(tokenFile, `${NEW_TOKEN}\n`);
    expect(await statusOf('/things', NEW_TOKEN)).toBe(200);
    expect(await statusOf('/things', TOKEN)).toBe(401);
  });

  it('keeps its token when the file is gone or too short', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bearer-'));
    const tokenFile = join(dir, 'token');
    await serve({ token: TOKEN, tokenFile });
    expect(await statusOf('/things', 'short')).toBe(401);
    await writeFile(tokenFile, 'short');
    expect(await statusOf('/things', 'short')).toBe(401);
    expect(await statusOf('/things', TOKEN)).toBe(200);
  });
});
