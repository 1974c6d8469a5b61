import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from '../../../../core/http/server.js';
import { createLogger, redactUrl } from '../../../../core/process/logger.js';
import { createTestAgent, TEST_TOKEN } from '../../../helpers/test-agent.js';

describe('the process log', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => app?.close());

  it.each([
    ['/sessions/s1/terminal/ws?ticket=abc123', '/sessions/s1/terminal/ws?ticket=[REDACTED]'],
    ['/files/a.txt?download=1&token=t0k&sig=s1', '/files/a.txt?download=1&token=[REDACTED]&sig=[REDACTED]'],
    ['/x?Access_Token=a&signature=b&tokens=kept', '/x?Access_Token=[REDACTED]&signature=[REDACTED]&tokens=kept'],
    ['/x?%74icket=a', '/x?%74icket=[REDACTED]'],
    ['/sessions?limit=5', '/sessions?limit=5'],
    ['/health', '/health'],
  ])('redacts %s as %s', (url, logged) => {
    expect(redactUrl(url)).toBe(logged);
  });

  it('logs requests without their bearer token, cookies or URL credentials', async () => {
    const lines: string[] = [];
    app = createServer({ logger: createLogger('info', { write: (line: string) => void lines.push(line) }) });
    app.get('/sessions/:id/terminal/ws', async (request) => {
      request.log.info({ req: { headers: request.headers } }, 'headers seen');
      return { ok: true };
    });
    const res = await app.inject({
      url: '/sessions/s1/terminal/ws?ticket=very-secret-ticket&cols=80',
      headers: { authorization: 'Bearer very-secret-token', cookie: 'grant=very-secret-cookie' },
    });
    expect(res.statusCode).toBe(200);
    const log = lines.join('');
    expect(log).not.toMatch(/very-secret/);
    const incoming = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'incoming request');
    expect(incoming.req.url).toBe('/sessions/s1/terminal/ws?ticket=[REDACTED]&cols=80');
  });

  it('logs a line on arrival and one on answer per request, unless told not to (the agent), errors either way', async () => {
    const messages = async (logRequests: boolean | undefined) => {
      const lines: string[] = [];
      const server = createServer({ logger: createLogger('info', { write: (line: string) => void lines.push(line) }), logRequests });
      server.get('/ok', async () => ({ ok: true }));
      server.get('/boom', async () => {
        throw new Error('boom');
      });
      await server.inject({ url: '/ok' });
      await server.inject({ url: '/boom' });
      await server.close();
      return lines.map((line) => JSON.parse(line).msg as string);
    };
    expect(await messages(undefined)).toEqual(['incoming request', 'request completed', 'incoming request', 'unhandled error', 'request completed']);
    expect(await messages(false)).toEqual(['unhandled error']);
  });

  it("the agent logs what an exec did, not the request: the controller in front logs every one", async () => {
    const lines: string[] = [];
    const agent = await createTestAgent({}, createLogger('info', { write: (line: string) => void lines.push(line) }));
    try {
      const res = await agent.app.inject({ method: 'POST', url: '/exec', headers: { authorization: `Bearer ${TEST_TOKEN}` }, payload: { command: ['true'] } });
      expect(res.statusCode).toBe(200);
    } finally {
      await agent.close();
    }
    const messages = lines.map((line) => JSON.parse(line).msg as string);
    expect(messages).toContain('exec finished');
    expect(messages).not.toContain('incoming request');
    expect(messages).not.toContain('request completed');
  });
});
