import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';

/** Where the console is served; its page and assets hold no data, so they are public like /health. */
export const CONSOLE_PATH = '/console';
export const CONSOLE_ROUTES = [CONSOLE_PATH, `${CONSOLE_PATH}/:file`];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};

/**
 * The page talks only to its own origin (fetch and WebSocket). A preview is framed from its own origin below
 * PREVIEW_DOMAIN (`previewFrames`, a CSP source) when previews are on; otherwise it renders in a sandboxed srcdoc frame.
 */
function securityHeaders(previewFrames?: string): Record<string, string> {
  return {
    'content-security-policy':
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
      `connect-src 'self'; frame-src 'self'${previewFrames ? ` ${previewFrames}` : ''}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };
}

/** Serves the operator console built by scripts/build-console.sh, read once at start-up. */
export const consoleRoutes: FastifyPluginAsync<{ assetsDir: string; previewFrames?: string }> = async (fastify, { assetsDir, previewFrames }) => {
  const headers = securityHeaders(previewFrames);
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const files = new Map<string, Buffer>();
  for (const name of await readdir(assetsDir).catch(() => [] as string[])) {
    if (TYPES[extname(name)]) files.set(name, await readFile(join(assetsDir, name)));
  }
  // The page's settings: only whether previews open on origins of their own (no secret, like the page itself).
  if (files.size > 0) files.set('settings.json', Buffer.from(JSON.stringify({ previews: previewFrames !== undefined })));

  const send = (name: string) => {
    const content = files.get(name);
    if (!content) {
      if (files.size === 0) throw new AppError('CONSOLE_NOT_BUILT', 'the console is not built: run bash scripts/build-console.sh');
      throw new AppError('ROUTE_NOT_FOUND', `no console file ${name}`);
    }
    return { content, type: TYPES[extname(name)]! };
  };

  app.get(CONSOLE_PATH, async (_request, reply) => {
    const { content, type } = send('index.html');
    return reply.headers(headers).type(type).send(content);
  });
  app.get(`${CONSOLE_PATH}/:file`, { schema: { params: z.object({ file: z.string().max(128) }) } }, async (request, reply) => {
    const { content, type } = send(request.params.file);
    return reply.headers(headers).type(type).send(content);
  });
};
