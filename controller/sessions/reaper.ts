import type { FastifyBaseLogger } from 'fastify';
import type { SessionOwner, SessionRuntime } from '../runtime/session-runtime.js';
import { isolate } from './isolate.js';
import type { StateStore } from './state-store.js';

export interface ReaperDeps {
  runtime: SessionRuntime;
  store: StateStore;
  log: FastifyBaseLogger;
}

/**
 * Removes what sessions and warm pool members leave on the host: one owner's container, volumes and folders when
 * it goes, and, on every sweep, the volumes and folders whose owner is gone (a crash between two steps, a container
 * removed by hand). It only ever touches what carries this controller's instance.
 */
export class Reaper {
  constructor(private readonly deps: ReaperDeps) {}

  /**
   * Removes the container under `containerName` if `owner` owns it, the owner's volumes and folder, and, for a pool
   * member a session claimed, that session's folder too (the member's own is then a link to it). Idempotent.
   */
  async remove(owner: SessionOwner, containerName: string, claimedBy?: string): Promise<void> {
    const { runtime, store } = this.deps;
    await runtime.removeSession(owner, containerName);
    if (claimedBy) await store.remove({ kind: 'session', sessionId: claimedBy });
    await store.remove(owner);
  }

  /** Removes every kept workspace whose time ran out by `now`. */
  async removeExpiredKept(now: Date): Promise<void> {
    const { runtime, log } = this.deps;
    for (const kept of await runtime.listKeptWorkspaces()) {
      if (kept.until.getTime() > now.getTime()) continue;
      log.info({ volume: kept.volume, sessionId: kept.sessionId }, 'removing expired kept workspace');
      await isolate(log, { sessionId: kept.sessionId }, 'remove expired kept workspace', () => runtime.removeVolume(kept.volume));
    }
  }

  /** Removes every volume and folder of this instance whose owner `isAlive` does not vouch for. */
  async reap(isAlive: (owner: SessionOwner) => boolean): Promise<void> {
    const { runtime, store, log } = this.deps;
    for (const volume of await runtime.listVolumes()) {
      if (isAlive(volume.owner)) continue;
      log.info({ volume: volume.name, owner: volume.owner }, 'removing orphaned volume');
      await isolate(log, { owner: volume.owner }, 'remove orphaned volume', () => runtime.removeVolume(volume.name));
    }
    for (const owner of await store.list()) {
      if (isAlive(owner)) continue;
      log.info({ owner }, 'removing orphaned folder');
      await isolate(log, { owner }, 'remove orphaned folder', () => store.remove(owner));
    }
  }
}
