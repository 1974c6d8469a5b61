import type { SessionOwner } from '../runtime/session-runtime.js';
import type { SessionState } from './session-store.js';

/** What the controller remembers of a session: a cache of Docker and the state file, rebuilt by reconcile. */
export interface SessionRecord {
  id: string;
  containerName: string;
  token: string;
  createdAt: Date;
  expiresAt: Date;
  address: string | null;
  /** False while POST /sessions is still waiting for the agent. */
  ready: boolean;
  /** Set when the session is a claimed warm pool member: its container and volumes carry this id, not the session's. */
  poolId?: string;
}

/**
 * The sessions this controller knows, shared by the lifecycle and the reconciler, with one operation per session
 * at a time (create, extend, delete, expire); reconcile skips ids that are busy.
 */
export class SessionTable {
  readonly #records = new Map<string, SessionRecord>();
  readonly #locks = new Map<string, Promise<void>>();

  constructor(private readonly now: () => number) {}

  /** Sessions that exist now, including those being created (what MAX_SESSIONS counts). */
  get size(): number {
    return this.#records.size;
  }

  get(sessionId: string): SessionRecord | undefined {
    return this.#records.get(sessionId);
  }

  has(sessionId: string): boolean {
    return this.#records.has(sessionId);
  }

  set(record: SessionRecord): void {
    this.#records.set(record.id, record);
  }

  delete(sessionId: string): void {
    this.#records.delete(sessionId);
  }

  /** A copy: callers may delete while they walk it. */
  records(): SessionRecord[] {
    return [...this.#records.values()];
  }

  /** Whether an operation on this id runs or waits. */
  isBusy(sessionId: string): boolean {
    return this.#locks.has(sessionId);
  }

  /** Whether a session (being created or not) has claimed this pool member. */
  claimedPool(poolId: string): boolean {
    for (const record of this.#records.values()) if (record.poolId === poolId) return true;
    return false;
  }

  isExpired(record: SessionRecord): boolean {
    return record.ready && record.expiresAt.getTime() <= this.now();
  }

  /** Runs `fn` after every operation on this id that came before it. */
  async withLock<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(sessionId) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#locks.set(sessionId, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(sessionId) === tail) this.#locks.delete(sessionId);
    }
  }
}

/** Whose labels the session's container and volumes carry: its pool id once it was a warm pool member. */
export function containerOwner(record: SessionRecord): SessionOwner {
  return record.poolId ? { kind: 'pool', poolId: record.poolId } : { kind: 'session', sessionId: record.id };
}

/** Which container is whose: a claimed warm session's by its pool id, every other session's by its id. */
export function ownerKey(owner: SessionOwner): string {
  return owner.kind === 'pool' ? `pool:${owner.poolId}` : owner.sessionId;
}

/** The state file's content for a session, with the expiry given. */
export function stateOf(record: SessionRecord, instance: string, expiresAt = record.expiresAt): SessionState {
  return {
    session_id: record.id,
    instance,
    container_name: record.containerName,
    created_at: record.createdAt.toISOString(),
    expires_at: expiresAt.toISOString(),
    ...(record.poolId ? { pool_id: record.poolId } : {}),
  };
}
