import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { daemonStatus as statusOf } from '../../core/docker/docker-errors.js';
import { SESSION_PATHS } from '../../core/session-layout.js';
import { containerCgroupOf, readCgroupUsage, type ContainerCgroup } from './cgroup-usage.js';
import { toRuntimeError } from './runtime-errors.js';
import type { RuntimeUsage } from './session-runtime.js';

const run = promisify(execFile);
// The walk of one session's volumes gives up after this (a workspace of millions of files): its figure stays unknown.
const WALK_TIMEOUT_MS = 60_000;
const STORAGE_TARGETS: string[] = [SESSION_PATHS.workspace, SESSION_PATHS.dockerData];
// A cold start (a controller just started, the first scrape of many sessions) learns every container at once: this
// many `docker inspect`s are under way at a time, the rest wait, rather than one per session on the engine at once.
export const INSPECT_CONCURRENCY = 4;

/** What the usage of one running container is read from, learned once from `docker inspect`. */
interface UsageSource {
  cgroup: ContainerCgroup;
  /** Host paths of its workspace and inner daemon data volumes (none when they live on a session filesystem). */
  volumePaths: string[];
  labels: Record<string, string>;
}

/** How the Docker runtime measures a disk: the used bytes of a session filesystem (null when it has none). */
export type DiskUsedBytes = (labels: Record<string, string>) => Promise<number | null>;

/**
 * Reads the usage of Docker session containers from the host: the cgroup files of each (found once per container
 * through `docker inspect` and /proc, then read directly), a statfs of its session filesystem, or a `du` of its two
 * volumes when asked (the slow part, which the caller runs in the background).
 */
export class DockerSessionUsage {
  readonly #sources = new Map<string, UsageSource>();
  readonly #inspects = pLimit(INSPECT_CONCURRENCY);

  constructor(
    private readonly docker: Docker,
    private readonly diskUsedBytes: DiskUsedBytes,
    private readonly procRoot = '/proc',
    private readonly cgroupRoot = '/sys/fs/cgroup',
  ) {}

  /** Cgroup figures, and the disk's when a statfs tells it; null when the container is not running. */
  async read(containerName: string): Promise<RuntimeUsage | null> {
    const known = this.#sources.get(containerName);
    const source = known ?? (await this.#learn(containerName));
    if (!source) return null;
    try {
      const usage = await readCgroupUsage(source.cgroup);
      const diskBytes = source.volumePaths.length > 0 ? undefined : await this.diskUsedBytes(source.labels);
      return { ...usage, ...(diskBytes === undefined ? {} : { diskBytes }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // Its cgroup is gone: it stopped, or the name now belongs to another container. Learned again next time.
      this.#sources.delete(containerName);
      return known ? this.read(containerName) : null;
    }
  }

  /** Bytes the container's two volumes hold on disk, by walking them; null when it has none or they are gone. */
  async walkVolumes(containerName: string): Promise<number | null> {
    const paths = (this.#sources.get(containerName) ?? (await this.#learn(containerName)))?.volumePaths ?? [];
    if (paths.length === 0) return null;
    return duBytes(paths);
  }

  /** Forgets what was learned of a container name (it is being removed). */
  forget(containerName: string): void {
    this.#sources.delete(containerName);
  }

  async #learn(containerName: string): Promise<UsageSource | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.#inspects(() => this.docker.getContainer(containerName).inspect());
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toRuntimeError(error, 'inspect a session container for its usage');
    }
    if (!info.State.Running || !info.State.Pid) return null;
    const procCgroup = await readFile(`${this.procRoot}/${info.State.Pid}/cgroup`, 'utf8').catch(() => '');
    const cgroup = containerCgroupOf(procCgroup, info.Id, this.cgroupRoot);
    if (!cgroup) return null;
    const volumePaths = info.Mounts.filter((m) => m.Type === 'volume' && STORAGE_TARGETS.includes(m.Destination)).map((m) => m.Source);
    const source = { cgroup, volumePaths, labels: info.Config.Labels ?? {} };
    this.#sources.set(containerName, source);
    return source;
  }
}

/**
 * `du` of the folders, in bytes allocated on disk: it never follows a link nor crosses into another filesystem, and
 * counts a hard-linked file once (the inner daemon's layers share many). Files that vanish mid-walk only make it
 * exit non-zero; its total still stands.
 */
async function duBytes(paths: string[]): Promise<number | null> {
  const output = await run('du', ['-s', '-x', '-c', '-B1', '--', ...paths], { timeout: WALK_TIMEOUT_MS }).then(
    (result) => result.stdout,
    (error: { stdout?: string; killed?: boolean }) => (error.killed ? '' : (error.stdout ?? '')),
  );
  const total = /^(\d+)\ttotal$/m.exec(output);
  return total ? Number(total[1]) : null;
}
