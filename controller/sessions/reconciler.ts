import type { FastifyBaseLogger } from 'fastify';
import type { ControllerConfig } from '../config.js';
import type { OwnedRuntimeSession, RuntimeSession, SessionOwner, SessionRuntime } from '../runtime/session-runtime.js';
import { isolate } from './isolate.js';
import type { Reaper } from './reaper.js';
import type { SessionLauncher } from './session-launcher.js';
import type { StateStore } from './state-store.js';
import type { SessionRecord, SessionTable } from './session-table.js';
import type { WarmPool } from './warm-pool.js';

export interface ReconcilerDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  store: StateStore;
  log: FastifyBaseLogger;
  table: SessionTable;
  pool: WarmPool;
  reaper: Reaper;
  launcher: SessionLauncher;
  /** Removes a session past its time (takes its lock). */
  expire: (sessionId: string) => Promise<void>;
  /** Removes a session's container, volumes and folders and forgets it; the caller holds its lock. */
  remove: (sessionId: string, container?: RuntimeSession) => Promise<void>;
  /** Only the leader hands the pool its containers and removes what nobody owns. */
  isLeader: () => boolean;
}

/**
 * Brings memory in line with Docker and the state files: expires what is due, adopts sessions it does not know
 * (a previous controller's), forgets sessions whose container vanished, hands the pool its containers, and lets
 * the reaper remove volumes and folders nobody owns.
 */
export class Reconciler {
  #reconciled: Promise<void> | null = null;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** The first reconcile (again after one failed); every request that needs the sessions waits for it. */
  async ensureReconciled(startStopped = false): Promise<void> {
    this.#reconciled ??= this.#reconcile(startStopped).catch((error: unknown) => {
      this.#reconciled = null;
      throw error;
    });
    await this.#reconciled;
  }

  /**
   * The periodic sweep: the first reconcile if Docker was away at start, then one that also starts stopped
   * sessions (an engine restart stops them cleanly, which the on-failure restart policy leaves alone).
   */
  async sweep(): Promise<void> {
    const first = this.#reconciled === null;
    await this.ensureReconciled(true);
    if (!first) await this.#reconcile(true);
  }

  async #reconcile(startStopped: boolean): Promise<void> {
    const { runtime, store, log, table, pool } = this.deps;
    await runtime.upkeep?.();
    const listedAt = performance.now();
    const listed = await runtime.listSessions();
    // A pool member a session claimed is that session (its state names the pool id); the others are the pool's.
    const claims = await store.poolClaims();
    const sessions = new Map<string, OwnedRuntimeSession>();
    const poolContainers = new Map<string, OwnedRuntimeSession>();
    const presentPools = new Set<string>();
    for (const c of listed) {
      if (c.owner.kind === 'session') {
        sessions.set(c.owner.sessionId, c);
        continue;
      }
      presentPools.add(c.owner.poolId);
      const claimedBy = claims.get(c.owner.poolId);
      if (claimedBy) sessions.set(claimedBy, c);
      else poolContainers.set(c.owner.poolId, c);
    }
    for (const [sessionId, container] of sessions) {
      if (table.isBusy(sessionId)) continue;
      await isolate(log, { sessionId }, 'reconcile session', async () => {
        const record = table.get(sessionId) ?? (await this.#adopt(sessionId, container));
        if (!record) return;
        record.address = container.address ?? record.address;
        if (table.isExpired(record)) await this.deps.expire(record.id);
        else if (startStopped && container.state === 'stopped') {
          log.info({ sessionId }, 'starting stopped session');
          await runtime.startSession(record.containerName);
        }
      });
    }
    for (const record of table.records()) {
      if (!record.ready || sessions.has(record.id) || table.isBusy(record.id)) continue;
      // Claimed after the claims were read: listed as a pool container, but there.
      if (record.poolId && presentPools.has(record.poolId)) continue;
      log.warn({ sessionId: record.id }, 'session container vanished; removing what is left of it');
      await isolate(log, { sessionId: record.id }, 'remove vanished session', () => table.withLock(record.id, () => this.deps.remove(record.id)));
    }
    if (!this.deps.isLeader()) return;
    await pool.reconcile(poolContainers, listedAt, (poolId) => table.claimedPool(poolId));
    const isAlive = (owner: SessionOwner): boolean =>
      owner.kind === 'pool'
        ? presentPools.has(owner.poolId) || pool.has(owner.poolId) || table.claimedPool(owner.poolId)
        : sessions.has(owner.sessionId) || table.has(owner.sessionId) || table.isBusy(owner.sessionId);
    await this.deps.reaper.reap(isAlive);
  }

  /** Takes on a session another controller made (a replica's, or a previous controller's). */
  async adopt(sessionId: string, container: OwnedRuntimeSession): Promise<SessionRecord | null> {
    return this.#adopt(sessionId, container);
  }

  // A session a previous controller made: its state file, or (if that is lost) the expiry in its labels.
  async #adopt(sessionId: string, container: OwnedRuntimeSession): Promise<SessionRecord | null> {
    const { store, log, table } = this.deps;
    if (container.owner.kind === 'pool') await this.#settleClaim(container.owner.poolId, sessionId, container);
    const token = await store.readToken({ kind: 'session', sessionId });
    let state = await store.read(sessionId);
    if (!state && token && container.createdAt && container.expiresAt) {
      state = {
        session_id: sessionId,
        instance: this.deps.config.instance,
        container_name: container.containerName,
        created_at: container.createdAt.toISOString(),
        expires_at: container.expiresAt.toISOString(),
      };
      await store.write(state);
    }
    if (!state || !token) {
      // Without its token the agent cannot be reached: the session is of no use to anyone.
      log.warn({ sessionId }, 'session has lost its token or state; removing it');
      await table.withLock(sessionId, () => this.deps.remove(sessionId, container));
      return null;
    }
    const record: SessionRecord = {
      id: sessionId,
      containerName: container.containerName,
      token,
      createdAt: new Date(state.created_at),
      expiresAt: new Date(state.expires_at),
      address: container.address,
      ready: true,
      ...(container.owner.kind === 'pool' ? { poolId: container.owner.poolId } : {}),
    };
    table.set(record);
    log.info({ sessionId, expiresAt: record.expiresAt }, 'adopted session');
    return record;
  }

  // A claim the previous controller did not finish: the folder moved and the container named after the session.
  async #settleClaim(poolId: string, sessionId: string, container: RuntimeSession): Promise<void> {
    await this.deps.store.settleClaim(poolId, sessionId);
    const name = this.deps.launcher.containerName({ kind: 'session', sessionId });
    if (container.containerName === name) return;
    await this.deps.runtime.renameSession(container.containerName, name).then(
      () => {
        container.containerName = name;
      },
      (err: unknown) => this.deps.log.warn({ err, sessionId }, 'could not give a claimed warm session its name'),
    );
  }
}
