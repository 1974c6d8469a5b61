import { mkdir, realpath } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import { ArchiveExtractResult, ArchiveQuery } from '../../shared/schemas/archive.js';
import type { RouteDeps } from '../app.js';
import { resolveWorkspacePath } from '../files/workspace-path.js';
import { packAsLearner } from '../as-learner/learner-tar.js';
import { runAsLearner } from '../as-learner/run-as-learner.js';
import { extractAsLearner } from './archive-as-learner.js';

/** The workspace in and out as archives; every byte is read and written by a worker running as the learner. */
export const archiveRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, { config }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const workspace = await realpath(config.workspace);
  const learner = { uid: config.learner.uid, gid: config.learner.gid, cgroupProcs: config.learner.cgroupProcs };

  // Uploads go to the worker as they arrive, unbuffered: its byte and entry caps bound them (this plugin only).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  // A packer that fails midway breaks the response off: a cut .tar.gz is never taken for a whole one.
  app.get(AgentRoute.archive, { schema: { querystring: ArchiveQuery } }, async (request, reply) => {
    const folder = await resolveWorkspacePath(workspace, request.query.path);
    const name = folder.relative ? folder.relative.split('/').pop()! : 'workspace';
    return reply
      .type('application/gzip')
      .header('content-disposition', `attachment; filename="${name.replace(/[^\w.-]/g, '_')}.tar.gz"`)
      .send(pipeline(packAsLearner(learner, { dir: folder.real }), createGzip(), () => {}));
  });

  app.put(AgentRoute.archive, { schema: { querystring: ArchiveQuery, response: { 200: ArchiveExtractResult } } }, async (request) => {
    const body = request.body as Readable | undefined;
    if (!body) throw new AppError('ARCHIVE_INVALID', 'send the .tar or .tar.gz as the request body');
    const folder = await resolveWorkspacePath(workspace, request.query.path);
    // Made by the learner, so a folder the learner swapped for a link is refused by the kernel, not followed by root.
    await runAsLearner(learner, ['mkdir', '-p', '--', folder.real]).catch(() => {
      throw new AppError('PERMISSION_DENIED', `${folder.public} cannot be made`);
    });
    const summary = await extractAsLearner(learner, folder.real, body, { maxBytes: config.archiveMaxBytes, maxEntries: config.archiveMaxEntries });
    return { path: folder.public, ...summary };
  });
};
