import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import { daemonMessage } from '../../core/docker/docker-errors.js';
import { watchContainerStarts } from './container-starts.js';
import { capSessionInotify } from './host-limits.js';
import { toRuntimeError } from './runtime-errors.js';
import { checkRemappedHost, findRemappedRoot, handOverAgentDir, handOverCgroups, type EngineInfo, type RemappedRoot } from './userns.js';

/**
 * What an engine that remaps user namespaces needs from the controller (userns.ts): a session's root is a host uid,
 * not root, so its agent folder and, at every start of its container, its cgroup folders are handed to that uid,
 * and its namespace gets its own inotify quota (host-limits.ts). Learned once from `docker info`; nothing to do on
 * an engine that does not remap.
 */
export class RemappedEngine {
  constructor(
    private readonly docker: Docker,
    private readonly log: FastifyBaseLogger,
    /** The label filter of this controller's containers, whose restarts by the engine are watched. */
    private readonly ownLabelFilter: string[],
  ) {}

  // Learned once from `docker info` (again after a failure): null on an engine that does not remap.
  #remapped: Promise<RemappedRoot | null> | undefined;

  /** The host uid and gid of a session's root; null on an engine that does not remap. */
  root(): Promise<RemappedRoot | null> {
    this.#remapped ??= this.#detect().catch((error: unknown) => {
      this.#remapped = undefined;
      throw toRuntimeError(error, 'ask the engine whether it remaps user namespaces');
    });
    return this.#remapped;
  }

  /** Hands a session's agent folder to its root, on an engine that remaps. */
  async handOverAgentDir(dir: string): Promise<void> {
    const root = await this.root();
    if (!root) return;
    try {
      await handOverAgentDir(dir, root);
    } catch (error) {
      throw new AppError('SESSION_START_FAILED', `could not hand the agent folder ${dir} to the session's root: ${daemonMessage(error)}`, undefined, { cause: error });
    }
  }

  /** After a start of a session container (Docker makes its cgroup folders anew at every start). */
  async containerStarted(info: Docker.ContainerInspectInfo | null): Promise<void> {
    const root = await this.root();
    if (root) await this.#prepareStarted(info, root);
  }

  async #detect(): Promise<RemappedRoot | null> {
    const root = findRemappedRoot((await this.docker.info()) as EngineInfo);
    if (!root) return null;
    this.log.info({ uid: root.uid, gid: root.gid }, "the engine remaps user namespaces: a session's root is this host uid, not root");
    for (const problem of await checkRemappedHost(root)) this.log.error({ problem }, 'sessions on this remapped engine will not work');
    // A session the engine restarts by itself (its restart policy, after the agent died) gets new cgroup folders.
    watchContainerStarts(this.docker, this.ownLabelFilter, async (id) => this.#prepareStarted(await this.docker.getContainer(id).inspect().catch(() => null), root), this.log);
    return root;
  }

  // What every start of a session container needs on a remapping engine: its inotify quota, its cgroup folders.
  async #prepareStarted(info: Docker.ContainerInspectInfo | null, root: RemappedRoot): Promise<void> {
    if (!info?.State.Running) return;
    await this.#capInotify(info);
    await this.#handOverCgroups(info, root);
  }

  // Without its cgroup folders the agent runs the learner's processes in its own cgroup: the session works, unprotected.
  async #handOverCgroups(info: Docker.ContainerInspectInfo, root: RemappedRoot): Promise<void> {
    try {
      const folders = await handOverCgroups({ id: info.Id, pid: info.State.Pid }, root);
      this.log.debug({ containerName: info.Name, folders }, "handed the session's cgroup folders to its root");
    } catch (error) {
      this.log.warn({ err: error, containerName: info.Name }, "could not hand the session's cgroup folders to its root: a fork bomb can stall its agent");
    }
  }

  // Its own namespace's share of the host's inotify limits (host-limits.ts), set at every start of its container.
  async #capInotify(info: Docker.ContainerInspectInfo): Promise<void> {
    try {
      await capSessionInotify(info.State.Pid);
    } catch (error) {
      this.log.warn({ err: error, containerName: info.Name }, "could not set the session's inotify quota: its learner can use up the watches of every session");
    }
  }
}
