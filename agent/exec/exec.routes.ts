import { realpathSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { posix } from 'node:path';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import { ExecRequest, ExecResult, type ExecFrame } from '../../shared/schemas/exec.js';
import type { RouteDeps } from '../app.js';
import type { AgentConfig } from '../config.js';
import { PUBLIC_WORKSPACE, resolveWorkspacePath } from '../files/workspace-path.js';
import { learnerEnv } from '../learner-env.js';
import { ExecCgroup } from '../limits/exec-cgroup.js';
import { signal } from './process-tree.js';
import { runProcess, type RunOptions } from './run-process.js';
import { SpareProcesses, type Spare } from './spare-process.js';

export const execRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, { config }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const running = new Set<AbortController>();
  const spares = new SpareProcesses(config, app.log);
  let closing = false;
  // Not awaited: readiness need not wait for a cgroup and a fork.
  app.addHook('onReady', async () => spares.prepare());
  // A shutting-down agent kills what it started, so open requests end instead of holding the close.
  app.addHook('preClose', async () => {
    closing = true;
    spares.close();
    running.forEach((run) => run.abort());
  });

  // Aborts when the client goes away before its answer was sent: nobody would read the result.
  const trackClient = (raw: ServerResponse): AbortController => {
    const run = new AbortController();
    running.add(run);
    raw.on('close', () => {
      if (!raw.writableFinished) run.abort();
    });
    return run;
  };

  app.post(AgentRoute.exec, { schema: { body: ExecRequest, response: { 200: ExecResult } } }, async (request, reply) => {
    const options = await toRunOptions(config, request.body);
    const run = trackClient(reply.raw);
    try {
      const result = await runExec(config, spares, { ...options, signal: run.signal }, request.log);
      request.log.info({ program: options.command[0], exit_code: result.exit_code, timed_out: result.timed_out }, 'exec finished');
      // The server only closes connections that are idle when it starts closing; this one must not linger.
      if (closing) reply.header('connection', 'close');
      return result;
    } finally {
      running.delete(run);
    }
  });

  app.post(AgentRoute.execStream, { schema: { body: ExecRequest } }, async (request, reply) => {
    // Everything that can be refused is checked before the 200 goes out, so errors keep their status and code.
    const options = await toRunOptions(config, request.body);
    const run = trackClient(reply.raw);
    reply.hijack();
    const res = reply.raw;
    // Headers go out at once, and proxies (nginx honours x-accel-buffering) must pass each frame through as it comes.
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const send = (frame: ExecFrame): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(frame)}\n`);
      heartbeat.refresh();
    };
    const heartbeat = setTimeout(() => send({ type: 'heartbeat' }), config.keepaliveSeconds * 1000);
    try {
      const result = await runExec(config, spares, { ...options, signal: run.signal, onOutput: (type, data) => send({ type, data }) }, request.log);
      const { exit_code, timed_out, truncated, elapsed_seconds } = result;
      send({ type: 'exit', exit_code, timed_out, truncated, elapsed_seconds });
      request.log.info({ program: options.command[0], exit_code, timed_out, client_gone: run.signal.aborted }, 'exec stream finished');
    } finally {
      clearTimeout(heartbeat);
      running.delete(run);
      res.end();
      if (closing) res.socket?.end(); // a keep-alive connection would hold the server's close
    }
  });
};

/**
 * Runs one exec in a cgroup of its own where the session has learner cgroups, so that a timeout kills every process
 * it started, also those that left its process tree; elsewhere the tree is walked (run-process.ts). A spare process
 * made in advance in that cgroup runs it (spare-process.ts); without one it is started here.
 */
async function runExec(config: AgentConfig, spares: SpareProcesses, options: RunOptions, log: FastifyBaseLogger): Promise<ExecResult> {
  const spare = spares.take();
  if (spare) return runInSpare(spares, spare, options);
  const driver = config.learner.cgroups?.driver;
  let group: ExecCgroup | undefined;
  try {
    group = driver && (await ExecCgroup.create(driver));
  } catch (error) {
    // The command still runs, in the helpers' group; only a timeout's reach is smaller.
    log.warn({ err: error }, 'cannot make a cgroup for this exec');
  }
  // Without a group of its own the command runs in the helpers' group (none where the session has no learner cgroups).
  const started = spares.startNow(group);
  if (started) return runInSpare(spares, started, options);
  // No learner-exec: setpriv and the learner's shell (run-process.ts).
  try {
    return await runProcess({ ...options, cgroupProcs: group?.procs ?? config.learner.cgroupProcs, killAll: group && killGroup(group) });
  } finally {
    await group?.release();
  }
}

async function runInSpare(spares: SpareProcesses, spare: Spare, options: RunOptions): Promise<ExecResult> {
  const { group } = spare;
  try {
    return await runProcess({ ...options, killAll: group && killGroup(group) }, () => spares.launch(spare, options));
  } finally {
    // Not awaited: the answer need not wait for the folder to go (a group still busy goes at a later sweep).
    void group?.release();
    spares.afterExec();
  }
}

/** Kills the process group first: it also holds a command killed before its first process joined the cgroup. */
function killGroup(group: ExecCgroup): (pid: number) => Promise<void> {
  return async (pid) => {
    signal(-pid, 'SIGKILL');
    await group.kill();
  };
}

async function toRunOptions(config: AgentConfig, body: ExecRequest): Promise<Omit<RunOptions, 'signal' | 'onOutput'>> {
  const timeoutSeconds = body.timeout_seconds ?? config.execTimeoutSeconds;
  if (timeoutSeconds > config.execTimeoutSeconds) {
    throw new AppError('VALIDATION', `timeout_seconds must be at most ${config.execTimeoutSeconds}`);
  }
  return {
    command: body.command,
    cwd: await resolveWorkdir(config.workspace, body.workdir),
    env: learnerEnv(config, body.env),
    uid: config.learner.uid,
    gid: config.learner.gid,
    stdin: body.stdin,
    timeoutMs: timeoutSeconds * 1000,
    outputLimitBytes: config.execOutputLimitBytes,
  };
}

/**
 * `/workspace/...` and relative paths are confined to the workspace; any other absolute folder is allowed as
 * is, since the command runs as the learner and the file permissions decide what it may do there.
 */
async function resolveWorkdir(workspace: string, workdir: string | undefined): Promise<string> {
  const requested = posix.resolve(PUBLIC_WORKSPACE, workdir ?? '.');
  const inWorkspace = requested === PUBLIC_WORKSPACE || requested.startsWith(`${PUBLIC_WORKSPACE}/`);
  // Synchronous: a lookup of one path takes microseconds, a round trip through the thread pool far longer, and the
  // workspace itself (every exec's default folder) needs no more than these two.
  const workspaceReal = realpathSync.native(workspace);
  const path = requested === PUBLIC_WORKSPACE ? workspaceReal : inWorkspace ? (await resolveWorkspacePath(workspaceReal, requested)).real : requested;
  const shown = workdir ?? PUBLIC_WORKSPACE;
  try {
    if (!statSync(path).isDirectory()) throw new AppError('NOT_A_DIRECTORY', `workdir ${shown} is not a directory`, { workdir: shown });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new AppError('FILE_NOT_FOUND', `workdir ${shown} does not exist`, { workdir: shown });
    throw error;
  }
  return path;
}
