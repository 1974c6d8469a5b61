import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';
import { AppError, type ErrorCode } from '../../shared/errors.js';
import {
  parsePortSpec,
  type ContainerSummary,
  type ImageSummary,
  type RunRequest,
  type RunResult,
  type StopRequest,
  type StopResult,
} from '../../shared/schemas/docker.js';
import { daemonMessage, daemonStatus, isDaemonUnreachable, toDockerError } from '../../core/docker/docker-errors.js';
import { BoundedLines, readLogLines } from './log-lines.js';

/** Limits of the agent that bound a foreground run. */
export interface RunLimits {
  /** Default and maximum wait for a `detach: false` run. */
  timeoutSeconds: number;
  outputLimitBytes: number;
}

/** Runs a dockerode call and turns its failure into the client's error; `notFound` is what a 404 means here. */
async function daemonCall<T>(call: () => Promise<T>, notFound: ErrorCode = 'CONTAINER_NOT_FOUND'): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toDockerError(error, notFound);
  }
}

function portBindings(ports: string[]): Pick<Docker.ContainerCreateOptions, 'ExposedPorts'> & { PortBindings: Docker.PortMap } {
  const ExposedPorts: Record<string, object> = {};
  const PortBindings: Docker.PortMap = {};
  for (const spec of ports) {
    const port = parsePortSpec(spec);
    if (!port) throw new AppError('VALIDATION', `invalid port ${spec}`);
    const key = `${port.container_port}/${port.protocol}`;
    ExposedPorts[key] = {};
    (PortBindings[key] ??= []).push({ HostIp: port.host_ip, HostPort: port.host_port });
  }
  return { ExposedPorts, PortBindings };
}

/** Creates and starts a container; with `detach: false` waits (bounded) for it to exit and collects its output. */
export async function runContainer(docker: Docker, request: RunRequest, limits: RunLimits, log: FastifyBaseLogger): Promise<RunResult> {
  const { ExposedPorts, PortBindings } = portBindings(request.ports);
  log.info({ image: request.image, name: request.name }, 'creating container');
  const container = await daemonCall(
    () =>
      docker.createContainer({
        name: request.name,
        Image: request.image,
        Cmd: request.command,
        Env: request.env && Object.entries(request.env).map(([key, value]) => `${key}=${value}`),
        WorkingDir: request.workdir,
        ExposedPorts,
        // A foreground run removes its container itself, after its logs were read.
        HostConfig: { PortBindings, AutoRemove: request.auto_remove && request.detach },
      }),
    'IMAGE_NOT_FOUND',
  );
  const info = await daemonCall(() => container.inspect());
  const name = info.Name.replace(/^\//, '');
  try {
    await container.start();
  } catch (error) {
    // A container that never started would only hold on to its name: remove it before answering.
    await container.remove({ force: true, v: true }).catch(() => undefined);
    log.info({ name, err: error }, 'container failed to start');
    throw toStartError(error);
  }
  log.info({ name, id: container.id }, 'started container');
  if (request.detach) return { container_name: name, container_id: container.id };

  const timeoutSeconds = Math.min(request.timeout_seconds ?? limits.timeoutSeconds, limits.timeoutSeconds);
  const { exitCode, timedOut } = await waitForExit(container, timeoutSeconds);
  const logs = await readLogs(docker, container.id, undefined, limits.outputLimitBytes);
  if (request.auto_remove) await daemonCall(() => container.remove({ force: true, v: true }));
  return { container_name: name, container_id: container.id, exit_code: exitCode, logs, timed_out: timedOut };
}

function toStartError(error: unknown): AppError {
  const mapped = toDockerError(error);
  if (isDaemonUnreachable(error) || mapped.code === 'PORT_IN_USE') return mapped;
  // The daemon answers a command it cannot execute (missing, not executable, bad workdir) with 400 or 500.
  return new AppError('RUN_FAILED', daemonMessage(error));
}

async function waitForExit(container: Docker.Container, timeoutSeconds: number): Promise<{ exitCode: number; timedOut: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutSeconds * 1000);
  });
  const exited = daemonCall(() => container.wait() as Promise<{ StatusCode: number }>);
  try {
    const first = await Promise.race([exited, timeout]);
    if (first !== 'timeout') return { exitCode: first.StatusCode, timedOut: false };
  } finally {
    clearTimeout(timer);
  }
  await container.kill().catch(() => undefined);
  return { exitCode: (await exited).StatusCode, timedOut: true };
}

/** Stops a container (SIGTERM, then SIGKILL after `timeout` seconds) and removes it with its anonymous volumes. */
export async function stopContainer(docker: Docker, request: StopRequest, log: FastifyBaseLogger): Promise<StopResult> {
  const name = request.container_name;
  const container = docker.getContainer(name);
  const missing = (): StopResult => {
    if (request.ignore_missing) return { container_name: name, stopped: false, removed: false };
    throw new AppError('CONTAINER_NOT_FOUND', `no container named ${name}`);
  };
  let stopped = true;
  log.info({ name }, 'stopping container');
  try {
    await container.stop({ t: request.timeout });
  } catch (error) {
    const status = daemonStatus(error);
    if (status === 404) return missing();
    // 304: it was not running; removing it may still be asked for.
    if (status !== 304) throw toDockerError(error);
    stopped = false;
  }
  if (!request.remove) return { container_name: name, stopped, removed: false };
  try {
    await container.remove({ force: true, v: true });
  } catch (error) {
    const status = daemonStatus(error);
    // An auto-removed container may be gone already, or the daemon may be removing it right now.
    if (status === 409 && /already in progress/i.test(daemonMessage(error))) {
      await container.wait({ condition: 'removed' }).catch(() => undefined);
    } else if (status !== 404) {
      throw toDockerError(error);
    }
  }
  log.info({ name, stopped }, 'removed container');
  return { container_name: name, stopped, removed: true };
}

/** Every container of the daemon, running or not. */
export async function listContainers(docker: Docker): Promise<ContainerSummary[]> {
  const containers = await daemonCall(() => docker.listContainers({ all: true }));
  return containers.map((c) => ({
    name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
    id: c.Id,
    image: c.Image,
    state: c.State,
    status: c.Status,
    ports: (c.Ports ?? []).map((p) => ({
      container_port: p.PrivatePort,
      protocol: p.Type,
      ...(p.PublicPort ? { host_ip: p.IP ?? '', host_port: p.PublicPort } : {}),
    })),
    created: new Date(c.Created * 1000).toISOString(),
  }));
}

/** The daemon's images (not the intermediate layers of builds). */
export async function listImages(docker: Docker): Promise<ImageSummary[]> {
  const images = await daemonCall(() => docker.listImages());
  return images.map((image) => ({
    id: image.Id,
    tags: (image.RepoTags ?? []).filter((tag) => tag !== '<none>:<none>'),
    size_mb: Math.round((image.Size / 1e6) * 100) / 100,
    created: new Date(image.Created * 1000).toISOString(),
  }));
}

/** The last `tail` lines (all when undefined) a container wrote to stdout and stderr. */
export async function readLogs(docker: Docker, nameOrId: string, tail: number | undefined, limitBytes: number): Promise<string[]> {
  const info = await daemonCall(() => docker.getContainer(nameOrId).inspect());
  // dockerode buffers and JSON-parses a non-followed log answer; a raw stream keeps the bytes as they are.
  const stream = await daemonCall(
    () =>
      new Promise<Readable>((resolve, reject) => {
        docker.modem.dial(
          {
            path: `/containers/${encodeURIComponent(info.Id)}/logs?`,
            method: 'GET',
            isStream: true,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
            options: { stdout: true, stderr: true, follow: false, tail: tail === undefined ? 'all' : String(tail) },
          },
          (error, result) => (error ? reject(error) : resolve(result as Readable)),
        );
      }),
  );
  const lines = new BoundedLines(limitBytes);
  await daemonCall(() => readLogLines(docker, stream, info.Config.Tty, lines));
  return lines.lines();
}
