import type Docker from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../shared/errors.js';
import { daemonMessage, daemonStatus as statusOf } from '../../core/docker/docker-errors.js';
import { Label } from './labels.js';
import { ownerLabel, ownerOf, volumeOfListed } from './docker-inspect.js';
import type { WorkspaceMount } from './kept-workspaces.js';
import { isOwnedBy, ownLabelFilter, ownLabels } from './ownership.js';
import { toRuntimeError } from './runtime-errors.js';
import type { RuntimeVolume, SessionOwner, SessionSpec } from './session-runtime.js';
import { HostDiskFull, type SessionDisks } from './session-disks.js';

const VOLUME_REMOVE_ATTEMPTS = 20;
// How a session's filesystem appears among its volumes (a Docker volume name never holds a colon).
const DISK_VOLUME_PREFIX = 'disk:';

type VolumeRole = 'workspace' | 'docker';

/** Where a session's workspace and inner daemon's data live, as its container mounts them. */
export interface SessionFolders {
  type: 'bind' | 'volume';
  workspace: string;
  dockerData: string;
}

/**
 * A session's two folders: on its own filesystem of SESSION_DISK_LIMIT (`disks`), or two Docker volumes without a
 * limit. Both kinds are listed and removed as the session's volumes.
 */
export class SessionStorage {
  constructor(
    private readonly docker: Docker,
    private readonly instance: string,
    private readonly diskDir: string,
    private readonly disks: SessionDisks | null,
  ) {}

  /** Makes a new session's folders; `uid` owns its filesystem's root (the session's root on a remapping engine). */
  async create(spec: SessionSpec, uid: number): Promise<SessionFolders> {
    if (!this.disks) {
      return { type: 'volume', workspace: await this.#createVolume(spec, 'workspace'), dockerData: await this.#createVolume(spec, 'docker') };
    }
    try {
      return { type: 'bind', ...(await this.disks.create(diskKey(spec.owner), uid)) };
    } catch (error) {
      if (error instanceof HostDiskFull) {
        throw new AppError('HOST_DISK_FULL', `no new session while the host has less than ${error.minFreeBytes} bytes free in ${this.diskDir} (SESSION_DISK_MIN_FREE)`, {
          free_bytes: error.freeBytes,
          min_free_bytes: error.minFreeBytes,
        });
      }
      throw new AppError('SESSION_START_FAILED', `could not make the session's filesystem in ${this.diskDir}: ${daemonMessage(error)}`, undefined, { cause: error });
    }
  }

  /** A stopped session's filesystem is mounted again before its container starts (a host reboot unmounts it). */
  async mountFor(container: Docker.Container): Promise<void> {
    if (!this.disks) return;
    const owner = ownerOf((await container.inspect()).Config.Labels);
    if (!owner || !(await this.disks.has(diskKey(owner)))) return;
    await this.disks.ensureMounted(diskKey(owner));
  }

  /** Removes everything `owner`'s session stored: its volumes or its filesystem. */
  async remove(owner: SessionOwner): Promise<void> {
    const [key, id] = ownerLabel(owner);
    const volumes = await this.#listVolumes([`${key}=${id}`]);
    for (const volume of volumes) await this.removeVolume(volume.name);
    await this.#removeDisk(diskKey(owner));
  }

  /** Every session volume and filesystem of this controller. */
  async listVolumes(): Promise<RuntimeVolume[]> {
    const disks = (await this.disks?.list()) ?? [];
    const diskVolumes = disks.flatMap((key) => {
      const owner = ownerOfDiskKey(key);
      return owner ? [{ name: DISK_VOLUME_PREFIX + key, owner }] : [];
    });
    return [...(await this.#listVolumes([])), ...diskVolumes];
  }

  async removeVolume(name: string): Promise<void> {
    if (name.startsWith(DISK_VOLUME_PREFIX)) return this.#removeDisk(name.slice(DISK_VOLUME_PREFIX.length));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.docker.getVolume(name).remove();
        return;
      } catch (error) {
        if (statusOf(error) === 404) return;
        // A container that was just removed can hold its volumes for a moment.
        if (statusOf(error) === 409 && attempt < VOLUME_REMOVE_ATTEMPTS) {
          await sleep(100);
          continue;
        }
        throw toRuntimeError(error, `remove volume ${name}`);
      }
    }
  }

  /** Where a session's workspace lives: a folder on its own filesystem, or its workspace volume; null when gone. */
  async workspaceMount(owner: SessionOwner): Promise<WorkspaceMount | null> {
    if (this.disks && (await this.disks.has(diskKey(owner)))) {
      return { Type: 'bind', Source: (await this.disks.ensureMounted(diskKey(owner))).workspace };
    }
    const [key, id] = ownerLabel(owner);
    const [volume] = (await this.#listVolumes([`${key}=${id}`, `${Label.volumeRole}=workspace`])).filter((v) => v.name.endsWith('-workspace'));
    return volume ? { Type: 'volume', Source: volume.name } : null;
  }

  /** The used bytes of the filesystem of whoever these labels name; null without one. */
  async diskUsedBytes(labels: Record<string, string>): Promise<number | null> {
    const owner = ownerOf(labels);
    return owner && this.disks ? this.disks.usedBytes(diskKey(owner)) : null;
  }

  async #removeDisk(key: string): Promise<void> {
    if (!this.disks) return;
    try {
      await this.disks.remove(key);
    } catch (error) {
      throw new AppError('DOCKER_ERROR', `could not remove the session's filesystem ${key}: ${daemonMessage(error)}`, undefined, { cause: error });
    }
  }

  async #listVolumes(extraLabels: string[]): Promise<RuntimeVolume[]> {
    try {
      const { Volumes } = await this.docker.listVolumes({ filters: { label: [...ownLabelFilter(this.instance), ...extraLabels] } });
      return (Volumes ?? []).flatMap((v) => volumeOfListed(v) ?? []);
    } catch (error) {
      throw toRuntimeError(error, 'list session volumes');
    }
  }

  async #createVolume(spec: SessionSpec, role: VolumeRole): Promise<string> {
    const name = `${spec.containerName}-${role}`;
    try {
      const existing = await this.docker.getVolume(name).inspect();
      // Creating a volume that exists silently returns it: never hand a new session someone else's data.
      if (!isOwnedBy(existing.Labels, this.instance, spec.owner)) {
        throw new AppError('SESSION_EXISTS', `volume ${name} belongs to something else`);
      }
      await this.removeVolume(name);
    } catch (error) {
      if (error instanceof AppError) throw error;
      if (statusOf(error) !== 404) throw toRuntimeError(error, `inspect volume ${name}`);
    }
    try {
      await this.docker.createVolume({ Name: name, Labels: { ...ownLabels(this.instance, spec.owner), [Label.volumeRole]: role } });
      return name;
    } catch (error) {
      throw toRuntimeError(error, `create volume ${name}`);
    }
  }
}

// A session's filesystem is its owner's: a pool member's keeps its pool id once claimed, as its volumes do.
function diskKey(owner: SessionOwner): string {
  return owner.kind === 'pool' ? `pool-${owner.poolId}` : `session-${owner.sessionId}`;
}

function ownerOfDiskKey(key: string): SessionOwner | null {
  const match = /^(pool|session)-(.+)$/.exec(key);
  if (!match) return null;
  return match[1] === 'pool' ? { kind: 'pool', poolId: match[2]! } : { kind: 'session', sessionId: match[2]! };
}
