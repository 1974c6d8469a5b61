import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { createDockerClient } from '../../core/docker/docker-client.js';
import { parseControllerConfig, type ControllerConfig } from '../../controller/config.js';
import { Label } from '../../controller/runtime/labels.js';
import { ControllerProcess } from '../helpers/controller-process.js';
import { isAlive, removeNetwork } from '../helpers/docker-sweep.js';
import { removeSessionDisks } from '../helpers/session-disks.js';

const execFileAsync = promisify(execFile);

/** Label on what the bench makes itself (the `docker run` baselines); the controller labels its own. */
export const BENCH_LABEL = 'runner.bench';
const CLEANUP_ATTEMPTS = 6;
// Every name the bench gives starts with `rtb<pid in base 36>-`, so a crashed run's leftovers can be found by name.
const NAME_RE = /^\/?rtb([0-9a-z]+)-/;
const NETWORK_RE = /^rtbench-([0-9a-z]+)$/;
// The sockets folder and the temporary folder of a run: `rtb<id>-s…`, `rtb<id>-t…`.
const FOLDER_RE = /^rtb([0-9a-z]+)-[st][A-Za-z0-9]{6}$/;
// A run's controller instance, which names the folder of its sessions' filesystems under SESSION_DISK_DIR.
const INSTANCE_RE = /^bench-([0-9a-z]+)$/;

/** The Docker CLI, as a user types it; resolves to its stdout. */
export async function dockerCli(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileAsync('docker', args, { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs });
  return stdout;
}

/**
 * Everything one bench run owns: a test-only controller instance, name prefix, network and sockets folder, so it
 * never touches real sessions; `cleanup()` removes all of it, and `sweepLeftovers()` what crashed runs left.
 */
export class BenchEnv {
  readonly docker: Docker = createDockerClient(process.env.DOCKER_HOST);
  readonly id = process.pid.toString(36);
  readonly instance = `bench-${this.id}`;
  readonly namePrefix = `rtb${this.id}-`;
  readonly network = `rtbench-${this.id}`;
  #controller: ControllerProcess | null = null;
  #cleaned: Promise<void> | null = null;

  private constructor(
    /** Short (unix socket paths are limited), root-only: the controller's SOCKETS_DIR. */
    readonly socketsDir: string,
    /** Baselines' socket folders, transfer files, the controller's log. */
    readonly tmpDir: string,
    /** Extra `node` options for the controller, e.g. `--cpu-prof` to profile it. */
    readonly controllerNodeArgs: string[] = [],
  ) {}

  static async create(controllerNodeArgs: string[] = []): Promise<BenchEnv> {
    const id = process.pid.toString(36);
    const socketsDir = await mkdtemp(`/tmp/rtb${id}-s`);
    const tmpDir = await mkdtemp(join(tmpdir(), `rtb${id}-t`));
    return new BenchEnv(socketsDir, tmpDir, controllerNodeArgs);
  }

  get controllerLog(): string {
    return join(this.tmpDir, 'controller.log');
  }

  /** The controller's environment: the bench's own instance, network, folder and names; nothing of the caller's. */
  controllerEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      HOST: '127.0.0.1',
      SOCKETS_DIR: this.socketsDir,
      RUNNER_INSTANCE: this.instance,
      SESSION_NETWORK: this.network,
      SESSION_NAME_PREFIX: this.namePrefix,
      // The fleet, the main session and a warm pool must all fit.
      MAX_SESSIONS: '40',
      LOG_LEVEL: 'warn',
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      // The image scripts/build-images.sh just built, when the caller names its own.
      ...(process.env.SESSION_IMAGE ? { SESSION_IMAGE: process.env.SESSION_IMAGE } : {}),
      ...extra,
    };
  }

  /** The configuration the controller will parse from `controllerEnv` (the bench reads limits and features from it). */
  controllerConfig(extra: Record<string, string> = {}): ControllerConfig {
    return parseControllerConfig(this.controllerEnv(extra));
  }

  get controller(): ControllerProcess {
    if (!this.#controller) throw new Error('no controller is running');
    return this.#controller;
  }

  /** Starts `controller/main.ts` as `npm run controller` does, on a free loopback port, and waits for /health. */
  async startController(extra: Record<string, string> = {}): Promise<ControllerProcess> {
    await this.#controller?.stop();
    this.#controller = new ControllerProcess({ env: this.controllerEnv(extra), logFile: this.controllerLog, nodeArgs: this.controllerNodeArgs, docker: this.docker });
    await this.#controller.start();
    return this.#controller;
  }

  async stopController(): Promise<void> {
    await this.#controller?.stop();
    this.#controller = null;
  }

  /** Removes the controller, every container, volume and network of this run, and its folders; safe to call twice. */
  cleanup(): Promise<void> {
    this.#cleaned ??= this.#cleanup();
    return this.#cleaned;
  }

  async #cleanup(): Promise<void> {
    await this.stopController().catch(() => {});
    // An engine that restarts under the run comes back within seconds; what is still left, the next run sweeps.
    for (let attempt = 1; ; attempt++) {
      try {
        await removeDockerResources(this.docker, (id) => id === this.id, this.instance);
        break;
      } catch (error) {
        if (attempt === CLEANUP_ATTEMPTS) throw error;
        await sleep(5_000);
      }
    }
    // The sessions' own filesystems (SESSION_DISK_LIMIT): the controller removes one when its session is deleted, but
    // the containers went here without it. Left, they filled the host's disk over a day of runs.
    await removeSessionDisks(join(this.#diskDir, this.instance));
    await rm(this.socketsDir, { recursive: true, force: true });
    await rm(this.tmpDir, { recursive: true, force: true });
  }

  get #diskDir(): string {
    return this.controllerConfig().diskDir;
  }

  /** Removes what earlier bench runs left behind when they were killed (their process is gone). */
  async sweepLeftovers(): Promise<void> {
    const dead = (id: string) => id !== this.id && !isAlive(Number.parseInt(id, 36));
    await removeDockerResources(this.docker, dead);
    for (const name of await readdir(tmpdir())) {
      const id = FOLDER_RE.exec(name)?.[1];
      if (id !== undefined && dead(id)) await rm(join(tmpdir(), name), { recursive: true, force: true });
    }
    const diskDir = this.#diskDir;
    for (const name of await readdir(diskDir).catch(() => [])) {
      const id = INSTANCE_RE.exec(name)?.[1];
      if (id !== undefined && dead(id)) await removeSessionDisks(join(diskDir, name));
    }
  }
}

/**
 * Removes containers and volumes named `rtb<id>-…` and networks `rtbench-<id>` for ids `matches` accepts (and,
 * when given, everything labelled with the controller instance).
 */
async function removeDockerResources(docker: Docker, matches: (id: string) => boolean, instance?: string): Promise<void> {
  const owned = (name: string) => {
    const id = NAME_RE.exec(name)?.[1];
    return id !== undefined && matches(id);
  };
  const containers = await docker.listContainers({ all: true });
  const doomed = containers.filter(
    (c) => (instance !== undefined && c.Labels[Label.instance] === instance) || ((c.Labels[BENCH_LABEL] ?? c.Labels[Label.instance]) !== undefined && c.Names.some(owned)),
  );
  await Promise.all(doomed.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  const { Volumes } = await docker.listVolumes();
  // By name only when nobody else could have labelled it: the controller's or a `docker run -v` baseline's (no labels).
  const ours = (labels: Record<string, string> | null | undefined) => !labels || Object.keys(labels).length === 0 || labels[Label.instance]?.startsWith('bench-');
  const volumes = (Volumes ?? []).filter((v) => (instance !== undefined && v.Labels?.[Label.instance] === instance) || (owned(v.Name) && ours(v.Labels)));
  // A container that was just removed can hold its volumes for a moment.
  for (const volume of volumes) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const removed = await docker.getVolume(volume.Name).remove().then(
        () => true,
        (error: { statusCode?: number }) => error.statusCode === 404,
      );
      if (removed) break;
      await sleep(100);
    }
  }
  const networks = await docker.listNetworks();
  for (const network of networks) {
    const id = NETWORK_RE.exec(network.Name)?.[1];
    if (id !== undefined && matches(id)) await removeNetwork(docker, network.Id, network.Name);
  }
}
