import { isUtf8 } from 'node:buffer';
import { realpath, type FileHandle } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import {
  DeleteFileResult,
  FileList,
  ListFilesQuery,
  MkdirRequest,
  MkdirResult,
  MoveRequest,
  MoveResult,
  WriteFileRequest,
  WriteFileResult,
  type FileContent,
} from '../../shared/schemas/files.js';
import type { RouteDeps } from '../app.js';
import { WorkspaceFiles } from './workspace-files.js';

const OCTET_STREAM = 'application/octet-stream';

export const filesRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, { config }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const files = new WorkspaceFiles(await realpath(config.workspace), config.learner);
  const jsonReadLimit = config.bodyLimitBytes;

  // Raw uploads arrive whole as a Buffer, under the same limit as JSON bodies (this plugin only).
  app.addContentTypeParser(OCTET_STREAM, { parseAs: 'buffer', bodyLimit: config.bodyLimitBytes }, (_request, body, done) =>
    done(null, body),
  );

  app.get(AgentRoute.files, { schema: { querystring: ListFilesQuery, response: { 200: FileList } } }, async (request) =>
    files.list(request.query.path, request.query.depth),
  );

  // No response schema: the answer is either FileContent or a byte stream.
  app.get(AgentRoute.file, async (request, reply) => {
    const path = workspacePathOfUrl(request.url);
    const { handle, stats } = await files.open(path);
    if (acceptsRaw(request.headers.accept)) {
      reply.type(OCTET_STREAM).header('content-length', stats.size);
      if (stats.size === 0) {
        await handle.close();
        return reply.send(Buffer.alloc(0));
      }
      // Bounded by the announced length whatever the file does meanwhile; the stream closes the handle.
      return reply.send(handle.createReadStream({ start: 0, end: stats.size - 1 }));
    }
    try {
      if (stats.size > jsonReadLimit) {
        throw new AppError('PAYLOAD_TOO_LARGE', `${path} is ${stats.size} bytes, over ${jsonReadLimit} for JSON; send Accept: ${OCTET_STREAM}`);
      }
      const bytes = await readUpTo(handle, stats.size);
      const text = isUtf8(bytes);
      return {
        path,
        encoding: text ? 'utf-8' : 'base64',
        content: bytes.toString(text ? 'utf8' : 'base64'),
        size: bytes.length,
        modified: stats.mtime.toISOString(),
      } satisfies FileContent;
    } finally {
      await handle.close();
    }
  });

  app.put(
    AgentRoute.file,
    {
      schema: {
        // Per media type: JSON is validated by its schema; octet-stream is the raw Buffer from the parser above.
        body: { content: { 'application/json': { schema: WriteFileRequest } } },
        response: { 200: WriteFileResult, 201: WriteFileResult },
      },
    },
    async (request, reply) => {
      const path = workspacePathOfUrl(request.url);
      const data = contentOf(request.body);
      const { created } = await files.write(path, data);
      return reply.status(created ? 201 : 200).send({ path, size: data.length });
    },
  );

  app.delete(AgentRoute.file, { schema: { response: { 200: DeleteFileResult } } }, async (request) => ({
    path: await files.remove(workspacePathOfUrl(request.url)),
  }));

  app.post(
    AgentRoute.filesMkdir,
    { schema: { body: MkdirRequest, response: { 200: MkdirResult, 201: MkdirResult } } },
    async (request, reply) => {
      const { path, created } = await files.mkdir(request.body.path);
      return reply.status(created ? 201 : 200).send({ path });
    },
  );

  app.post(AgentRoute.filesMove, { schema: { body: MoveRequest, response: { 200: MoveResult } } }, async (request) =>
    files.move(request.body.from, request.body.to, request.body.overwrite),
  );
};

/**
 * The client path named by a `/files/<path>` URL, decoded segment by segment from the raw URL. Fastify's wildcard
 * param has already turned `%2F` into a slash; an encoded slash, a `.`/`..` or an empty segment is refused, since a
 * proxy and the agent could disagree on which file it names.
 */
function workspacePathOfUrl(url: string): string {
  const segments = url.split('?', 1)[0]!.split('/').slice(2); // drops '' and 'files' (however it was spelled)
  if (segments.length > 1 && segments.at(-1) === '') segments.pop(); // one trailing slash is fine
  return `/${segments.map(decodeSegment).join('/')}`;
}

function decodeSegment(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new AppError('INVALID_PATH', 'the path has a malformed percent-encoding');
  }
  if (name === '' || name === '.' || name === '..' || name.includes('/')) {
    throw new AppError('INVALID_PATH', "the path has an empty, '.', '..' or encoded-slash segment");
  }
  return name;
}

function acceptsRaw(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((type) => type.split(';', 1)[0]!.trim().toLowerCase() === OCTET_STREAM);
}

function contentOf(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  // JSON was validated by the route schema already; this refuses text/plain and bodiless requests.
  const json = WriteFileRequest.safeParse(body);
  if (!json.success) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `send JSON {content, encoding?} or an ${OCTET_STREAM} body`);
  }
  return Buffer.from(json.data.content, json.data.encoding === 'base64' ? 'base64' : 'utf8');
}

// Reads at most `size` bytes: a file a learner keeps appending to cannot grow the answer.
async function readUpTo(handle: FileHandle, size: number): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}
