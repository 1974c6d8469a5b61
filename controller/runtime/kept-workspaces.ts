import type Docker from 'dockerode';
import { AppError } from '../../shared/errors.js';
import { daemonStatus as statusOf } from '../../core/docker/docker-errors.js';
import type { ControllerConfig } from '../config.js';
import { dateOf } from './docker-inspect.js';
import { Label, MANAGED_BY } from './labels.js';
import { toRuntimeError } from './runtime-errors.js';
import type { KeptWorkspace } from './session-runtime.js';

const KEPT_ROLE = 'kept-workspace';
// Root in a throwaway container that sees only the two workspaces: enough rights to copy any learner file as it is.
const COPY_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID'];

/** A workspace to copy from or into: a folder on a session's own filesystem, or a Docker volume. */
export interface WorkspaceMount {
  Type: 'bind' | 'volume';
  Source: string;
}

export interface KeptWorkspaceDeps {
  docker: Docker;
  config: ControllerConfig;
  removeVolume(name: string): Promise<void>;
  tailLogs(containerName: string, lines: number): Promise<string[]>;
}

/** Workspaces kept after their session, as volumes whose labels carry the session id and the expiry. */
export class KeptWorkspaces {
  constructor(private readonly deps: KeptWorkspaceDeps) {}

  /** Copies `workspace` into the kept volume of `sessionId` (replacing an older one) until `until`. */
  async keep(workspace: WorkspaceMount, sessionId: string, until: Date): Promise<KeptWorkspace> {
    const { docker, config } = this.deps;
    const kept: KeptWorkspace = { volume: this.#name(sessionId), sessionId, until };
    await this.deps.removeVolume(kept.volume);
    try {
      await docker.createVolume({
        Name: kept.volume,
        // No session or pool id label: the orphan sweep never takes it; its expiry label decides.
        Labels: {
          [Label.managedBy]: MANAGED_BY,
          [Label.instance]: config.instance,
          [Label.volumeRole]: KEPT_ROLE,
          [Label.keptSessionId]: sessionId,
          [Label.keptUntil]: until.toISOString(),
        },
      });
    } catch (error) {
      throw toRuntimeError(error, `create volume ${kept.volume}`);
    }
    try {
      await this.copy(workspace, { Type: 'volume', Source: kept.volume });
    } catch (error) {
      await this.deps.removeVolume(kept.volume).catch(() => {});
      throw error;
    }
    return kept;
  }

  async find(sessionId: string): Promise<KeptWorkspace | null> {
    try {
      return this.#keptOf(await this.deps.docker.getVolume(this.#name(sessionId)).inspect());
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toRuntimeError(error, 'inspect a kept workspace');
    }
  }

  async list(): Promise<KeptWorkspace[]> {
    const { docker, config } = this.deps;
    try {
      const labels = [`${Label.managedBy}=${MANAGED_BY}`, `${Label.instance}=${config.instance}`, `${Label.volumeRole}=${KEPT_ROLE}`];
      const { Volumes } = await docker.listVolumes({ filters: { label: labels } });
      return (Volumes ?? []).flatMap((v) => {
        const kept = this.#keptOf(v);
        return kept ? [kept] : [];
      });
    } catch (error) {
      throw toRuntimeError(error, 'list kept workspaces');
    }
  }

  /**
   * Copies one workspace's content into another, links as links, owners and modes as they are, in a container
   * that has no network and sees nothing but the two (the source read-only).
   */
  async copy(from: WorkspaceMount, to: WorkspaceMount): Promise<void> {
    const { docker, config } = this.deps;
    let container: Docker.Container | undefined;
    try {
      container = await docker.createContainer({
        Image: config.sessionImage,
        Entrypoint: ['cp'],
        Cmd: ['-a', '--', '/from/.', '/to/'],
        User: '0:0',
        Labels: { [Label.managedBy]: MANAGED_BY, [Label.instance]: config.instance },
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          CapDrop: ['ALL'],
          CapAdd: COPY_CAPS,
          SecurityOpt: ['no-new-privileges'],
          Mounts: [
            { ...from, Target: '/from', ReadOnly: true },
            { ...to, Target: '/to' },
          ],
        },
      });
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      if (StatusCode !== 0) {
        const logs = await this.deps.tailLogs(container.id, 5);
        throw new AppError('DOCKER_ERROR', `could not copy workspace ${from.Source} to ${to.Source}: ${logs.join(' ') || `exit ${StatusCode}`}`);
      }
    } catch (error) {
      throw toRuntimeError(error, `copy workspace ${from.Source} to ${to.Source}`);
    } finally {
      await container?.remove({ force: true }).catch(() => {});
    }
  }

  // A name no session or pool member can have (a `.`), one per session id.
  #name(sessionId: string): string {
    return `${this.deps.config.namePrefix}kept.${sessionId}`;
  }

  #keptOf(volume: { Name: string; Labels?: Record<string, string> | null }): KeptWorkspace | null {
    const labels = volume.Labels ?? {};
    if (labels[Label.managedBy] !== MANAGED_BY || labels[Label.instance] !== this.deps.config.instance || labels[Label.volumeRole] !== KEPT_ROLE) return null;
    const sessionId = labels[Label.keptSessionId];
    const until = dateOf(labels[Label.keptUntil]);
    return sessionId && until ? { volume: volume.Name, sessionId, until } : null;
  }
}
