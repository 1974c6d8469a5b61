import { posix } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import {
  BuildRequest,
  ContainrLabRoute,
  ExecRequest,
  FsCreateRequest,
  FsPathRequest,
  FsEntryRequest,
  FsRenameRequest,
  FsWriteRequest,
  RunRequest,
  RunStopRequest,
  StartRequest,
  StopRequest,
} from '../../shared/schemas/containrlab.js';
import type { BuildResult, RunResult, StopResult } from '../../shared/schemas/docker.js';
import type { ExecResult } from '../../shared/schemas/exec.js';
import type { FileList } from '../../shared/schemas/files.js';
import type { ControllerConfig } from '../config.js';
import type { SessionManager } from '../sessions/session-manager.js';
import { resolveTemplate } from '../sessions/workspace-template.js';
import { CompatError, compatBody, sendCompatError, toCompatError } from './compat-errors.js';
import { SessionAgent } from './session-agent.js';
import { terminalBridgeRoute } from './terminal-bridge.js';

const WORKSPACE = '/workspace';
const STARTER_FOLDER = 'starter';
// Standard alphabet with padding, as the agent's own file writes accept it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface ContainrLabOptions {
  sessions: SessionManager;
  config: ControllerConfig;
}

/**
 * ContainrLab's flat API, so its backend and judges work unchanged: thin adapters over the session manager and the
 * session agents' own routes (reached through the controller's proxy), nothing implemented twice.
 */
export const containrlabRoutes: FastifyPluginAsync<ContainrLabOptions> = async (fastify, { sessions, config }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const agent = new SessionAgent(fastify, sessions, config.apiToken);
  app.setErrorHandler(sendCompatError);

  app.get(ContainrLabRoute.healthz, async () => ({ ok: true }));

  app.post(ContainrLabRoute.start, { schema: { body: StartRequest } }, async (request) => {
    const { session_id: sessionId, lab_slug: slug } = request.body;
    const starter = await resolveTemplate(config.labsRoot, [slug, STARTER_FOLDER]).catch(() => {
      throw new CompatError(404, { detail: `Starter assets not found for lab '${slug}'` });
    });
    try {
      const session = await sessions.create({ session_id: sessionId }, starter);
      return { session_id: sessionId, container: session.container_name };
    } catch (error) {
      // Starting a running session again is not an error for this API: it is there, as the learner left it.
      if (!(error instanceof AppError && error.code === 'SESSION_EXISTS')) throw error;
      const session = await sessions.get(sessionId);
      if (session.status !== 'running') throw toCompatError('SESSION_NOT_READY', 'Runner session is not running');
      return { session_id: sessionId, container: session.container_name };
    }
  });

  app.post(ContainrLabRoute.stop, { schema: { body: StopRequest } }, async (request) => {
    await sessions.delete(request.body.session_id, request.body.preserve_workspace);
    return { ok: true };
  });

  app.post(ContainrLabRoute.exec, { schema: { body: ExecRequest } }, async (request) => {
    const { session_id: sessionId, command, workdir, environment } = request.body;
    const result = (
      await agent.call(sessionId, 'POST', AgentRoute.exec, { command, ...(workdir ? { workdir } : {}), ...(environment ? { env: environment } : {}) })
    ).json<ExecResult>();
    return { exit_code: result.exit_code, logs: nonEmptyLines(result.logs), elapsed_seconds: result.elapsed_seconds };
  });

  app.post(ContainrLabRoute.build, { schema: { body: BuildRequest } }, async (request) => {
    const { session_id: sessionId, context_path: contextPath, dockerfile_path: dockerfilePath, build_args: buildArgs } = request.body;
    if (!contextPath.startsWith('/')) throw new CompatError(400, { detail: 'context_path must be absolute inside the runner' });
    const imageTag = request.body.image_tag || `containrlab/session-${sessionId.slice(0, 12)}:latest`;
    const build = (
      await agent.call(sessionId, 'POST', AgentRoute.build, {
        context_path: contextPath,
        dockerfile_path: dockerfilePath,
        image_tag: imageTag,
        ...(buildArgs ? { build_args: buildArgs } : {}),
      })
    ).json<BuildResult>();
    const image = await inspectImage(agent, sessionId, imageTag);
    return {
      image_tag: imageTag,
      logs: build.logs,
      metrics: {
        elapsed_seconds: build.metrics.elapsed_seconds,
        image_size_bytes: image.sizeBytes,
        image_size_mb: Math.round((image.sizeBytes / 1024 ** 2) * 100) / 100,
        layer_count: image.layers.length,
        cache_hits: build.metrics.cache_hits,
        layers: image.layers,
      },
    };
  });

  app.post(ContainrLabRoute.run, { schema: { body: RunRequest } }, async (request) => {
    const { session_id: sessionId, image, command, env, detach, auto_remove: autoRemove } = request.body;
    const ports = request.body.ports ?? [];
    const bad = ports.find((port) => !port.includes(':'));
    if (bad !== undefined) throw new CompatError(400, { detail: `Port mapping '${bad}' must be in HOST:CONTAINER form` });
    const name = request.body.name || defaultContainerName(sessionId);
    const started = performance.now();
    if (request.body.remove_existing) {
      await agent.call(sessionId, 'POST', AgentRoute.stop, { container_name: name, timeout: 0, remove: true, ignore_missing: true });
    }
    const run = (
      await agent.call(sessionId, 'POST', AgentRoute.run, {
        image,
        ports,
        name,
        detach,
        auto_remove: autoRemove,
        ...(command?.length ? { command } : {}),
        ...(env ? { env } : {}),
      })
    ).json<RunResult>();
    const logs = detach ? [run.container_id] : nonEmptyLines(run.logs ?? []);
    if (!detach && run.exit_code !== 0) throw new CompatError(422, compatBody('docker run failed', logs));
    return { container_name: name, logs, elapsed_seconds: seconds(started) };
  });

  app.post(ContainrLabRoute.runStop, { schema: { body: RunStopRequest } }, async (request) => {
    const { session_id: sessionId, timeout, remove, ignore_missing: ignoreMissing } = request.body;
    const name = request.body.container_name || defaultContainerName(sessionId);
    try {
      const stopped = (await agent.call(sessionId, 'POST', AgentRoute.stop, { container_name: name, timeout, remove, ignore_missing: false })).json<StopResult>();
      return { ok: true, stopped: true, removed: remove ? stopped.removed : null, logs: [name] };
    } catch (error) {
      if (!(error instanceof CompatError && error.statusCode === 404)) throw error;
      if (ignoreMissing) return { ok: true, stopped: false };
      throw new CompatError(404, { detail: 'Inner container not found' });
    }
  });

  app.post(ContainrLabRoute.fsList, { schema: { body: FsPathRequest } }, async (request) => {
    const path = workspacePath(request.body.path);
    const list = (await agent.call(request.body.session_id, 'GET', `${AgentRoute.files}?path=${encodeURIComponent(path)}`)).json<FileList>();
    return {
      path,
      exists: true,
      is_dir: true,
      entries: list.entries.map((entry) => ({
        name: entry.name,
        path: entry.path,
        is_dir: entry.type === 'directory',
        size: entry.type === 'file' ? entry.size : null,
        modified: Date.parse(entry.modified) / 1000,
      })),
    };
  });

  app.post(ContainrLabRoute.fsRead, { schema: { body: FsEntryRequest } }, async (request) => {
    const path = workspacePath(request.body.path);
    if (path === WORKSPACE) throw new CompatError(400, { detail: 'Target is not a regular file' });
    const file = await agent.call(request.body.session_id, 'GET', fileUrl(path), undefined, { accept: 'application/octet-stream' });
    return { path, encoding: 'base64', content: file.raw.toString('base64') };
  });

  app.post(ContainrLabRoute.fsWrite, { schema: { body: FsWriteRequest } }, async (request) => {
    const path = workspacePath(request.body.path);
    await writeFile(agent, request.body.session_id, path, decodeBase64(request.body.content, request.body.encoding));
    return { ok: true, path };
  });

  app.post(ContainrLabRoute.fsCreate, { schema: { body: FsCreateRequest } }, async (request) => {
    const { session_id: sessionId, kind } = request.body;
    const path = workspacePath(request.body.path);
    if (kind === 'directory') await agent.call(sessionId, 'POST', AgentRoute.filesMkdir, { path });
    else await writeFile(agent, sessionId, path, decodeBase64(request.body.content ?? '', request.body.encoding));
    return { ok: true, path, kind };
  });

  app.post(ContainrLabRoute.fsRename, { schema: { body: FsRenameRequest } }, async (request) => {
    const path = workspacePath(request.body.path);
    const newPath = workspacePath(request.body.new_path);
    if (path === newPath) throw new CompatError(400, { detail: 'Source and destination paths are identical' });
    await agent.call(request.body.session_id, 'POST', AgentRoute.filesMove, { from: path, to: newPath, overwrite: true });
    return { ok: true, path, new_path: newPath };
  });

  app.post(ContainrLabRoute.fsDelete, { schema: { body: FsEntryRequest } }, async (request) => {
    const path = workspacePath(request.body.path);
    if (path === WORKSPACE) throw new CompatError(400, { detail: 'Cannot delete workspace root' });
    await agent.call(request.body.session_id, 'DELETE', fileUrl(path));
    return { ok: true, path };
  });

  await app.register(terminalBridgeRoute, { sessions, agent });
};

/** A client path (relative to /workspace or absolute inside it) in its absolute spelling; 400 when it leaves. */
function workspacePath(requested: string | null | undefined): string {
  const path = posix.resolve(WORKSPACE, requested || WORKSPACE);
  if (path !== WORKSPACE && !path.startsWith(`${WORKSPACE}/`)) throw new CompatError(400, { detail: 'Path escapes workspace root' });
  return path;
}

/** The agent's `/files/workspace/<path>` for an absolute workspace path, each segment escaped. */
function fileUrl(path: string): string {
  return `${AgentRoute.files}${path.split('/').map(encodeURIComponent).join('/')}`;
}

function decodeBase64(content: string, encoding: string): Buffer {
  if (encoding !== 'base64') throw new CompatError(400, { detail: 'Only base64 encoding is supported' });
  if (!BASE64.test(content)) throw new CompatError(400, { detail: 'Invalid base64 payload' });
  return Buffer.from(content, 'base64');
}

async function writeFile(agent: SessionAgent, sessionId: string, path: string, data: Buffer): Promise<void> {
  await agent.call(sessionId, 'PUT', fileUrl(path), data);
}

function defaultContainerName(sessionId: string): string {
  return `rl_app_${sessionId.slice(0, 12)}`;
}

function nonEmptyLines(lines: string[]): string[] {
  return lines.map((line) => line.replace(/\r$/, '')).filter((line) => line.length > 0);
}

function seconds(startedMs: number): number {
  return Math.round(performance.now() - startedMs) / 1000;
}

interface ImageFacts {
  sizeBytes: number;
  layers: { id: string; size_bytes: number; size_mb: number; created_by?: string }[];
}

// The image's exact size and history, read with the docker CLI as the learner through the agent's exec.
async function inspectImage(agent: SessionAgent, sessionId: string, imageTag: string): Promise<ImageFacts> {
  const script = 'docker image inspect --format "{{.Size}}" "$1" && docker image history --no-trunc --human=false --format "{{.ID}}|{{.Size}}|{{.CreatedBy}}" "$1"';
  const result = (await agent.call(sessionId, 'POST', AgentRoute.exec, { command: ['sh', '-c', script, 'sh', imageTag] })).json<ExecResult>();
  const [size = '0', ...history] = result.exit_code === 0 ? result.stdout.split('\n').filter(Boolean) : [];
  const layers = history.map((line) => {
    const [id = '', layerSize = '0', ...createdBy] = line.split('|');
    const bytes = Number(layerSize) || 0;
    const command = createdBy.join('|').trim().slice(0, 160);
    return { id, size_bytes: bytes, size_mb: Math.round((bytes / 1024 ** 2) * 100) / 100, ...(command ? { created_by: command } : {}) };
  });
  return { sizeBytes: Number(size) || 0, layers };
}
