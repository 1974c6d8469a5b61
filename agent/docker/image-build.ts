import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import type { BuildRequest, BuildResult } from '../../shared/schemas/docker.js';
import { PackError } from '../as-learner/learner-tar.js';
import { packBuildContext, type BuildContext } from './build-context.js';
import { daemonMessage, isDaemonUnreachable, toDockerError } from '../../core/docker/docker-errors.js';
import { BoundedLines, LineSplitter } from './log-lines.js';

export interface BuildOptions {
  /** Byte budget of the logs kept for the answer. */
  outputLimitBytes: number;
  /** Called with each line of builder output as it arrives. */
  onLine?: (line: string) => void;
  /** Aborting it cancels the build (the daemon stops when its client goes away). */
  signal?: AbortSignal;
  log: FastifyBaseLogger;
}

/** One JSON message of the Engine API's build stream. */
interface BuildMessage {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

const CACHE_HIT = /^ ---> Using cache$/;

/** Builds an image with the daemon's classic builder; a failed build throws BUILD_FAILED carrying its logs. */
export async function buildImage(docker: Docker, context: BuildContext, request: BuildRequest, options: BuildOptions): Promise<BuildResult> {
  const { log } = options;
  const startedAt = performance.now();
  const logs = new BoundedLines(options.outputLimitBytes);
  let cacheHits = 0;
  const record = (lines: string[]): void => {
    for (const line of lines) {
      if (CACHE_HIT.test(line)) cacheHits += 1;
      options.onLine?.(line);
    }
    logs.add(lines);
  };
  const fail = (message: string): AppError => {
    record([message]);
    return new AppError('BUILD_FAILED', message, { logs: logs.lines() });
  };

  log.info({ image: request.image_tag, context: context.public, dockerfile: context.dockerfile }, 'building image');
  const tar = packBuildContext(context);
  // A context the learner cannot pack (a file it may not read) fails the build with the packer's reason, whatever the daemon made of the cut tar.
  let packError: PackError | undefined;
  const packAborted = new AbortController();
  tar.once('error', (error) => {
    packError = error instanceof PackError ? error : new PackError(error.message);
    // The daemon would wait for the rest of the tar: end the request.
    packAborted.abort();
  });
  const abortSignal = options.signal ? AbortSignal.any([options.signal, packAborted.signal]) : packAborted.signal;
  const packFailure = (): AppError | undefined => (packError ? fail(`cannot pack the build context: ${packError.message}`) : undefined);
  let output: Readable;
  try {
    output = (await docker.buildImage(tar, {
      t: request.image_tag,
      dockerfile: context.dockerfile,
      buildargs: request.build_args ?? {},
      nocache: request.no_cache,
      // Intermediate containers go away even when a step fails, so failed builds leave nothing running.
      rm: true,
      forcerm: true,
      abortSignal,
    })) as Readable;
  } catch (error) {
    tar.destroy();
    const packFailed = packFailure();
    if (packFailed) throw packFailed;
    if (isDaemonUnreachable(error)) throw toDockerError(error);
    // The daemon refuses a Dockerfile it cannot parse before it starts: that is the build failing too.
    log.info({ err: error }, 'build refused');
    throw fail(daemonMessage(error));
  }

  const onAbort = (): void => void output.destroy();
  abortSignal.addEventListener('abort', onAbort, { once: true });
  let imageId: string | undefined;
  let failure: string | undefined;
  const frames = new LineSplitter();
  const text = new LineSplitter();
  const handle = (json: string): void => {
    if (!json.trim()) return;
    let message: BuildMessage;
    try {
      message = JSON.parse(json) as BuildMessage;
    } catch {
      record([json]);
      return;
    }
    if (typeof message.stream === 'string') record(text.push(message.stream));
    // Pull progress bars would flood the logs; their start and end lines are enough.
    if (typeof message.status === 'string' && !message.progress) record([message.id ? `${message.id}: ${message.status}` : message.status]);
    if (message.aux?.ID) imageId = message.aux.ID;
    if (message.error || message.errorDetail) failure = message.errorDetail?.message ?? message.error ?? 'build failed';
  };
  try {
    for await (const chunk of output) for (const json of frames.push(chunk as Buffer)) handle(json);
    for (const json of frames.end()) handle(json);
    record(text.end());
  } catch (error) {
    record(text.end());
    const packFailed = packFailure();
    if (packFailed) throw packFailed;
    if (options.signal?.aborted) throw new AppError('BUILD_FAILED', 'the build was cancelled', { logs: logs.lines() });
    throw isDaemonUnreachable(error) ? toDockerError(error) : fail(`the build stream broke: ${(error as Error).message}`);
  } finally {
    abortSignal.removeEventListener('abort', onAbort);
    tar.destroy();
  }
  const packFailed = packFailure();
  if (packFailed) throw packFailed;
  if (failure !== undefined) {
    log.info({ image: request.image_tag, reason: failure }, 'build failed');
    throw fail(failure);
  }

  const image = await docker
    .getImage(request.image_tag)
    .inspect()
    .catch((error: unknown) => {
      throw toDockerError(error, 'IMAGE_NOT_FOUND');
    });
  log.info({ image: request.image_tag, id: image.Id }, 'built image');
  return {
    image_tag: request.image_tag,
    image_id: image.Id ?? imageId ?? '',
    logs: logs.lines(),
    metrics: {
      image_size_mb: Math.round((image.Size / 1e6) * 100) / 100,
      elapsed_seconds: Math.round(performance.now() - startedAt) / 1000,
      cache_hits: cacheHits,
      layer_count: image.RootFS?.Layers?.length ?? 0,
    },
  };
}
