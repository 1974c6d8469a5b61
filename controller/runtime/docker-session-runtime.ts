import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../shared/errors.js';
import { daemonMessage, daemonStatus as statusOf } from '../../core/docker/docker-errors.js';
import { readLogStream } from '../../core/docker/log-demux.js';
import { SESSION_PATHS } from '../../core/session-layout.js';
import { Label } from './labels.js';
import { sessionSecurityHostConfig } from './session-security.js';
import type { ControllerConfig } from '../config.js';
import { sessionOfContainer, sessionOfListedContainer } from './docker-inspect.js';
import type { KeptWorkspace, OwnedRuntimeSession, RuntimeSession, RuntimeUsage, RuntimeVolume, SessionOwner, SessionRuntime, SessionSpec } from './session-runtime.js';
import { HostGuard } from './host-guard.js';
import { KeptWorkspaces } from './kept-workspaces.js';
import { isOwnedBy, ownLabelFilter, ownLabels } from './ownership.js';
import { toRuntimeError } from './runtime-errors.js';
import { SessionDisks } from './session-disks.js';
import { DockerSessionUsage } from './docker-session-usage.js';
import { RemappedEngine } from './remapped-engine.js';
import { SessionNetwork } from './session-network.js';
import { SessionStorage } from './session-storage.js';

const PING_TIMEOUT_MS = 2_000;
// Every session, cold or claimed from the warm pool, looks the same from inside: a claimed one cannot be renamed.
const SESSION_HOSTNAME = 'session';
const STOP_TIMEOUT_SECONDS = 5;

/** Sessions as Docker containers on the host engine, one bridge network for all, two volumes each. */
export class DockerSessionRuntime implements SessionRuntime {
  constructor(
    private readonly docker: Docker,
    private readonly config: ControllerConfig,
    private readonly log: FastifyBaseLogger,
    private readonly hostGuard: HostGuard | null = config.hostGuard ? new HostGuard() : null,
    // One folder per instance: a controller's reaper must never see another's disks.
    private readonly disks: SessionDisks | null = config.diskLimitBytes > 0 ? new SessionDisks(join(config.diskDir, config.instance), config.diskLimitBytes, config.diskMinFreeBytes) : null,
  ) {
    this.#kept = new KeptWorkspaces({
      docker,
      config,
      removeVolume: (name) => this.removeVolume(name),
      tailLogs: (name, lines) => this.tailLogs(name, lines),
    });
    this.#storage = new SessionStorage(docker, config.instance, config.diskDir, disks);
    this.#usage = new DockerSessionUsage(docker, (labels) => this.#storage.diskUsedBytes(labels));
    this.#network = new SessionNetwork(docker, config.network, config.instance, log, hostGuard);
    this.#remap = new RemappedEngine(docker, log, ownLabelFilter(config.instance));
  }

  readonly #kept: KeptWorkspaces;
  readonly #storage: SessionStorage;
  readonly #usage: DockerSessionUsage;
  readonly #network: SessionNetwork;
  readonly #remap: RemappedEngine;

  async diskFreeBytes(): Promise<number | null> {
    return this.disks ? this.disks.freeBytes() : null;
  }

  readUsage(containerName: string): Promise<RuntimeUsage | null> {
    return this.#usage.read(containerName);
  }

  walkDiskUsage(containerName: string): Promise<number | null> {
    return this.#usage.walkVolumes(containerName);
  }

  async ping(): Promise<boolean> {
    const timeout = sleep(PING_TIMEOUT_MS).then(() => false);
    const ping = this.docker.ping().then(
      () => true,
      () => false,
    );
    return Promise.race([ping, timeout]);
  }

  async createSession(spec: SessionSpec): Promise<RuntimeSession> {
    const { config } = this;
    if (!spec.agentDir) throw new AppError('SESSION_START_FAILED', 'a Docker session needs a host folder for its agent');
    await this.#network.ensure();
    const remappedRoot = await this.#remap.root();
    if (remappedRoot) await this.handOverAgentDir(spec.agentDir);
    const storage = await this.#storage.create(spec, remappedRoot?.uid ?? 0);
    if (spec.restoreWorkspaceFrom) {
      await this.#kept.copy({ Type: 'volume', Source: spec.restoreWorkspaceFrom }, { Type: storage.type, Source: storage.workspace });
    }
    const options: Docker.ContainerCreateOptions = {
      name: spec.containerName,
      Hostname: SESSION_HOSTNAME,
      Image: config.sessionImage,
      Labels: {
        ...ownLabels(config.instance, spec.owner),
        [Label.createdAt]: spec.createdAt.toISOString(),
        ...(spec.expiresAt ? { [Label.expiresAt]: spec.expiresAt.toISOString() } : {}),
      },
      Env: [
        // The image's own defaults, spelled out so that the mount below and these paths cannot drift apart.
        `AGENT_SOCKET=${SESSION_PATHS.agentSocket}`,
        `AGENT_TOKEN_FILE=${SESSION_PATHS.tokenFile}`,
        ...(config.registryMirror ? [`AGENT_REGISTRY_MIRROR=${config.registryMirror}`] : []),
      ],
      HostConfig: {
        ...sessionSecurityHostConfig(),
        Memory: config.memoryBytes,
        // No swap on top: the memory limit is the whole budget.
        MemorySwap: config.memoryBytes,
        NanoCpus: Math.round(config.cpus * 1e9),
        PidsLimit: config.pidsLimit,
        // No retry cap: Docker never resets its count, so a capped session would stay down after its sixth crash.
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 0 },
        NetworkMode: config.network,
        Mounts: [
          { Type: storage.type, Source: storage.workspace, Target: SESSION_PATHS.workspace },
          { Type: storage.type, Source: storage.dockerData, Target: SESSION_PATHS.dockerData },
          { Type: 'bind', Source: spec.agentDir, Target: SESSION_PATHS.agentDir },
        ],
        // The session's own output (agent and dockerd logs) must not fill the host's disk.
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
    };
    this.log.debug({ owner: spec.owner, containerName: spec.containerName }, 'creating session container');
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(options);
    } catch (error) {
      if (statusOf(error) === 409) throw new AppError('SESSION_EXISTS', `a container named ${spec.containerName} already exists`);
      if (statusOf(error) === 404 && /image/i.test(daemonMessage(error))) {
        throw new AppError('SESSION_START_FAILED', `session image ${config.sessionImage} not found: build it with scripts/build-images.sh`);
      }
      throw toRuntimeError(error, 'create the session container');
    }
    try {
      await container.start();
      const info = await container.inspect();
      if (remappedRoot) await this.#remap.containerStarted(info);
      return sessionOfContainer(info, config.network);
    } catch (error) {
      throw toRuntimeError(error, 'start the session container', 'SESSION_START_FAILED');
    }
  }

  async inspectSession(containerName: string): Promise<RuntimeSession | null> {
    try {
      return sessionOfContainer(await this.docker.getContainer(containerName).inspect(), this.config.network);
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toRuntimeError(error, 'inspect a session container');
    }
  }

  /**
   * A controller that started while Docker was away learns the subnets here, and whether the engine remaps (so that
   * it watches the sessions it finds); host guard rules lost to a flush or a reboot come back.
   */
  async upkeep(): Promise<void> {
    await this.#network.learnSubnets();
    await this.#remap.root().catch(() => null);
    await this.#network.recheckHostGuard();
  }

  async listSessions(): Promise<OwnedRuntimeSession[]> {
    try {
      const containers = await this.docker.listContainers({ all: true, filters: { label: ownLabelFilter(this.config.instance) } });
      // One labelled as ours but by no session or pool id was not made by a controller: nothing to act on.
      return containers.flatMap((c) => sessionOfListedContainer(c, this.config.network) ?? []);
    } catch (error) {
      throw toRuntimeError(error, 'list session containers');
    }
  }

  async startSession(containerName: string): Promise<void> {
    await this.#network.learnSubnets();
    const container = this.docker.getContainer(containerName);
    try {
      // A stopped session's filesystem is mounted again first: never a start without it.
      await this.#storage.mountFor(container);
      await container.start();
    } catch (error) {
      if (statusOf(error) === 304) return; // already running
      throw toRuntimeError(error, 'start a session container');
    }
    // Docker makes the container's cgroup folders anew at every start.
    if (await this.#remap.root()) await this.#remap.containerStarted(await container.inspect().catch(() => null));
  }

  handOverAgentDir(dir: string): Promise<void> {
    return this.#remap.handOverAgentDir(dir);
  }

  async removeSession(owner: SessionOwner, containerName: string): Promise<void> {
    this.#usage.forget(containerName);
    const container = this.docker.getContainer(containerName);
    try {
      const info = await container.inspect();
      // The name may belong to something that is not this session (another controller, a hand-made container).
      if (isOwnedBy(info.Config.Labels, this.config.instance, owner)) {
        this.log.debug({ owner, containerName }, 'removing session container');
        await container.remove({ force: true, v: true });
      }
    } catch (error) {
      if (statusOf(error) !== 404) throw toRuntimeError(error, 'remove the session container');
    }
    await this.#storage.remove(owner);
  }

  async renameSession(containerName: string, newName: string): Promise<void> {
    try {
      await this.docker.getContainer(containerName).rename({ name: newName });
    } catch (error) {
      if (statusOf(error) === 409) throw new AppError('SESSION_EXISTS', `a container named ${newName} already exists`);
      throw toRuntimeError(error, `rename container ${containerName} to ${newName}`);
    }
  }

  listVolumes(): Promise<RuntimeVolume[]> {
    return this.#storage.listVolumes();
  }

  removeVolume(name: string): Promise<void> {
    return this.#storage.removeVolume(name);
  }

  async keepWorkspace(owner: SessionOwner, containerName: string, sessionId: string, until: Date): Promise<KeptWorkspace | null> {
    const workspace = await this.#storage.workspaceMount(owner);
    if (!workspace) return null;
    const container = this.docker.getContainer(containerName);
    try {
      // A still running session could change files while they are copied.
      if (isOwnedBy((await container.inspect()).Config.Labels, this.config.instance, owner)) await container.stop({ t: STOP_TIMEOUT_SECONDS });
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 304) throw toRuntimeError(error, 'stop the session container');
    }
    const kept = await this.#kept.keep(workspace, sessionId, until);
    this.log.info({ sessionId, volume: kept.volume, until }, 'kept workspace');
    return kept;
  }

  findKeptWorkspace(sessionId: string): Promise<KeptWorkspace | null> {
    return this.#kept.find(sessionId);
  }

  listKeptWorkspaces(): Promise<KeptWorkspace[]> {
    return this.#kept.list();
  }

  async tailLogs(containerName: string, lines: number): Promise<string[]> {
    try {
      const raw = await this.docker.getContainer(containerName).logs({ stdout: true, stderr: true, tail: lines, follow: false });
      // A session has no TTY: its log interleaves stdout and stderr in frames.
      const chunks: Buffer[] = [];
      await readLogStream(this.docker, Readable.from([Buffer.from(raw)]), false, (_source, chunk) => chunks.push(chunk));
      return Buffer.concat(chunks).toString('utf8').split('\n').filter((line) => line.length > 0).slice(-lines);
    } catch {
      return [];
    }
  }

  watchSessionSubnets(listener: (subnets: string[]) => void): Promise<void> {
    return this.#network.watchSubnets(listener);
  }
}
