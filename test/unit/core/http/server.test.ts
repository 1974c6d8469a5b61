import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../../../shared/errors.js';
import { createServer } from '../../../../core/http/server.js';

// What a process's own code throws: an error with an errno, as Node's file system does.
const enoent = (): Error => Object.assign(new Error("ENOENT: no such file or directory, open '/secret/host/path'"), { code: 'ENOENT' });

describe('the HTTP server both processes build on', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => app?.close());

  function serve(mapError?: (error: unknown) => AppError | undefined): FastifyInstance {
    app = createServer({ mapError, bodyLimit: 1024 });
    app.get('/missing', async () => {
      throw enoent();
    });
    app.get('/refused', async () => {
      throw new AppError('SESSION_NOT_FOUND', 'no session x');
    });
    app.post('/items/:name', { schema: { body: z.object({ size: z.number().int() }) } }, async (request) => request.body);
    return app;
  }

  it("answers an error the process does not map as 500 INTERNAL, naming no host path", async () => {
    serve();
    const res = await app!.inject({ url: '/missing' });
    expect({ status: res.statusCode, body: res.json() }).toEqual({ status: 500, body: { code: 'INTERNAL', message: 'internal error' } });
  });

  it("answers with the process's own mapping when it has one", async () => {
    serve((error) => ((error as { code?: string }).code === 'ENOENT' ? new AppError('FILE_NOT_FOUND', 'no such file or directory') : undefined));
    const res = await app!.inject({ url: '/missing' });
    expect({ status: res.statusCode, body: res.json() }).toEqual({ status: 404, body: { code: 'FILE_NOT_FOUND', message: 'no such file or directory' } });
  });

  it('answers an AppError with its status and code', async () => {
    serve();
    const res = await app!.inject({ url: '/refused' });
    expect({ status: res.statusCode, code: res.json().code }).toEqual({ status: 404, code: 'SESSION_NOT_FOUND' });
  });

  it('validates bodies with zod and answers 400 VALIDATION', async () => {
    serve();
    const bad = await app!.inject({ method: 'POST', url: '/items/a', payload: { size: 'big' } });
    expect({ status: bad.statusCode, code: bad.json().code }).toEqual({ status: 400, code: 'VALIDATION' });
    const good = await app!.inject({ method: 'POST', url: '/items/a/', payload: { size: 3 } });
    expect({ status: good.statusCode, body: good.json() }).toEqual({ status: 200, body: { size: 3 } });
  });

  it('answers what fails before routing with the same error body', async () => {
    serve();
    const badUrl = await app!.inject({ url: '/items/%E0%A4%A' });
    expect({ status: badUrl.statusCode, code: badUrl.json().code }).toEqual({ status: 400, code: 'INVALID_PATH' });
    const tooLarge = await app!.inject({ method: 'POST', url: '/items/a', payload: { size: 1, pad: 'x'.repeat(2048) } });
    expect({ status: tooLarge.statusCode, code: tooLarge.json().code }).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    const unknown = await app!.inject({ url: '/nowhere?x=1' });
    expect({ status: unknown.statusCode, body: unknown.json() }).toEqual({ status: 404, body: { code: 'ROUTE_NOT_FOUND', message: 'no route GET /nowhere' } });
  });
});
