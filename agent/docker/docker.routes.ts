import { PassThrough } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AgentRoute } from '../../shared/routes.js';
import {
  BuildRequest,
  ContainerLogsParams,
  ContainerLogsQuery,
  RunRequest,
  StopRequest,
  type BuildFrame,
  type BuildResult,
  type ContainerList,
  type ContainerLogs,
  type ImageList,
  type RunResult,
  type StopResult,
} from '../../shared/schemas/docker.js';
import type { RouteDeps } from '../app.js';
import { toAgentError } from '../http/file-errors.js';
import { resolveBuildContext } from './build-context.js';
import { listContainers, listImages, readLogs, runContainer, stopContainer } from './containers.js';
import { toDockerError } from '../../core/docker/docker-errors.js';
import { buildImage } from './image-build.js';

/** Build, run, stop and inspect containers on the Docker daemon the agent was given (the learner's, in a session). */
export const dockerRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { config, docker } = deps;
  const runLimits = { timeoutSeconds: config.execTimeoutSeconds, outputLimitBytes: config.execOutputLimitBytes };

  app.post(AgentRoute.build, { schema: { body: BuildRequest } }, async (request, reply): Promise<BuildResult> => {
    const context = await resolveBuildContext(config.workspace, request.body.context_path, request.body.dockerfile_path, config.learner);
    // A client that gives up cancels its build instead of leaving it running unobserved.
    const cancel = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) cancel.abort();
    });
    return buildImage(docker, context, request.body, { outputLimitBytes: config.execOutputLimitBytes, signal: cancel.signal, log: request.log });
  });

  app.post(AgentRoute.buildStream, { schema: { body: BuildRequest } }, async (request, reply) => {
    // Everything that can be refused before the build starts is refused with a status; after that, with frames.
    const context = await resolveBuildContext(config.workspace, request.body.context_path, request.body.dockerfile_path, config.learner);
    await docker.ping().catch((error: unknown) => {
      throw toDockerError(error);
    });

    const out = new PassThrough();
    const cancel = new AbortController();
    // Fastify destroys the payload stream when the client goes away: the build stops with it.
    out.once('close', () => cancel.abort());
    const send = (frame: BuildFrame): void => {
      if (out.destroyed || out.writableEnded) return;
      out.write(`${JSON.stringify(frame)}\n`);
      // Any frame shows the stream is alive: the next heartbeat is due a full period of silence later.
      heartbeat.refresh();
    };
    const heartbeat = setInterval(() => send({ type: 'heartbeat' }), config.keepaliveSeconds * 1000);

    buildImage(docker, context, request.body, {
      outputLimitBytes: config.execOutputLimitBytes,
      signal: cancel.signal,
      log: request.log,
      onLine: (line) => send({ type: 'log', line }),
    })
      .then((result) => send({ type: 'done', ...result }))
      .catch((error: unknown) => {
        const appError = toAgentError(error);
        if (appError.code === 'INTERNAL') request.log.error({ err: error }, 'build stream failed');
        const logs = Array.isArray(appError.details?.logs) ? (appError.details.logs as string[]) : [];
        send({ type: 'error', code: appError.code, message: appError.message, logs });
      })
      .finally(() => {
        clearInterval(heartbeat);
        if (!out.destroyed) out.end();
      });

    return reply.type('application/x-ndjson').header('cache-control', 'no-store').send(out);
  });

  app.post(AgentRoute.run, { schema: { body: RunRequest } }, async (request): Promise<RunResult> =>
    runContainer(docker, request.body, runLimits, request.log),
  );

  app.post(AgentRoute.stop, { schema: { body: StopRequest } }, async (request): Promise<StopResult> =>
    stopContainer(docker, request.body, request.log),
  );

  app.get(AgentRoute.containers, async (): Promise<ContainerList> => ({ containers: await listContainers(docker) }));

  app.get(AgentRoute.images, async (): Promise<ImageList> => ({ images: await listImages(docker) }));

  app.get(
    AgentRoute.containerLogs,
    { schema: { params: ContainerLogsParams, querystring: ContainerLogsQuery } },
    async (request): Promise<ContainerLogs> => ({
      logs: await readLogs(docker, request.params.name, request.query.tail, config.execOutputLimitBytes),
    }),
  );
};
