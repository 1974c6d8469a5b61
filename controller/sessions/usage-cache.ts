import type { FastifyBaseLogger } from 'fastify';
import type { SessionUsage } from '../../shared/schemas/session.js';
import type { RuntimeUsage, SessionRuntime } from '../runtime/session-runtime.js';

export interface UsageCacheDeps {
  runtime: SessionRuntime;
  /** How long a read serves before the session's cgroup is read again. */
  ttlMs: number;
  /** How old a walk of a session's volumes may get before the next one is queued. */
  diskWalkMs: number;
  log: FastifyBaseLogger;
  now?: () => number;
}

/** A running session, as far as usage is concerned. */
export interface UsageTarget {
  sessionId: string;
  containerName: string;
}

interface Entry {
  containerName: string;
  raw: RuntimeUsage | null;
  readAt: number;
  reading?: Promise<void>;
  /** Bytes of the last walk (null before the first), when the runtime needs walks for this session. */
  walked: number | null;
  walkedAt: number;
  walkQueued: boolean;
}

/**
 * Usage of sessions, read lazily for the sessions someone asks about (a GET, the list, a /metrics scrape) and
 * served from memory for `ttlMs`: a busy list costs at most one read of a few cgroup files per session per TTL. A
 * disk that takes a walk is walked in the background, one session at a time, at most once per `diskWalkMs`; until
 * then its figure is the last walk's (null before the first).
 */
export class UsageCache {
  readonly #entries = new Map<string, Entry>();
  readonly #walkQueue: string[] = [];
  #walking = false;
  readonly #now: () => number;

  constructor(private readonly deps: UsageCacheDeps) {
    this.#now = deps.now ?? Date.now;
  }

  /** Whether the runtime measures usage at all (not on Kubernetes): without, every session's usage is null. */
  get measures(): boolean {
    return this.deps.runtime.readUsage !== undefined;
  }

  /** The usage of a running session, from cache when fresh; null when the runtime cannot tell. */
  async of(target: UsageTarget): Promise<SessionUsage | null> {
    if (!this.measures) return null;
    let entry = this.#entries.get(target.sessionId);
    // A session of the same id made anew has another container: nothing of the old one's figures carries over.
    if (!entry || entry.containerName !== target.containerName) {
      entry = { containerName: target.containerName, raw: null, readAt: -Infinity, walked: null, walkedAt: -Infinity, walkQueued: false };
      this.#entries.set(target.sessionId, entry);
    }
    if (this.#now() - entry.readAt >= this.deps.ttlMs) {
      entry.reading ??= this.#read(target.sessionId, entry).finally(() => {
        entry.reading = undefined;
      });
      await entry.reading;
    }
    return this.#usageOf(entry);
  }

  /** The usage of each of `targets` (a /metrics scrape); forgets every session not among them. */
  async all(targets: UsageTarget[]): Promise<{ sessionId: string; usage: SessionUsage | null }[]> {
    const ids = new Set(targets.map((t) => t.sessionId));
    for (const id of this.#entries.keys()) if (!ids.has(id)) this.#entries.delete(id);
    return Promise.all(targets.map(async (target) => ({ sessionId: target.sessionId, usage: await this.of(target) })));
  }

  /** Forgets a session (it is being removed). */
  forget(sessionId: string): void {
    this.#entries.delete(sessionId);
  }

  async #read(sessionId: string, entry: Entry): Promise<void> {
    try {
      entry.raw = (await this.deps.runtime.readUsage?.(entry.containerName)) ?? null;
    } catch (error) {
      // Served as unknown for one TTL: an engine that is away is not asked again on every request.
      this.deps.log.warn({ err: error, sessionId }, 'could not read the usage of a session');
      entry.raw = null;
    }
    entry.readAt = this.#now();
    if (entry.raw && entry.raw.diskBytes === undefined && this.#now() - entry.walkedAt >= this.deps.diskWalkMs) this.#queueWalk(sessionId, entry);
  }

  #queueWalk(sessionId: string, entry: Entry): void {
    if (entry.walkQueued || !this.deps.runtime.walkDiskUsage) return;
    entry.walkQueued = true;
    this.#walkQueue.push(sessionId);
    void this.#drainWalks();
  }

  // One walk at a time: walks read every file's metadata, and the machine has other work.
  async #drainWalks(): Promise<void> {
    if (this.#walking) return;
    this.#walking = true;
    try {
      for (let sessionId = this.#walkQueue.shift(); sessionId !== undefined; sessionId = this.#walkQueue.shift()) {
        const entry = this.#entries.get(sessionId);
        if (!entry) continue;
        const walked = await this.deps.runtime.walkDiskUsage!(entry.containerName).catch((error: unknown) => {
          this.deps.log.warn({ err: error, sessionId }, "could not walk a session's volumes for its disk usage");
          return entry.walked;
        });
        entry.walked = walked;
        entry.walkedAt = this.#now();
        entry.walkQueued = false;
      }
    } finally {
      this.#walking = false;
    }
  }

  #usageOf(entry: Entry): SessionUsage | null {
    const { raw } = entry;
    if (!raw) return null;
    return {
      memory_bytes: wholeOrNull(raw.memoryBytes),
      memory_limit_bytes: wholeOrNull(raw.memoryLimitBytes),
      cpu_seconds: raw.cpuSeconds === null ? null : Math.round(raw.cpuSeconds * 1000) / 1000,
      pids: wholeOrNull(raw.pids),
      disk_bytes: wholeOrNull(raw.diskBytes === undefined ? entry.walked : raw.diskBytes),
      measured_at: new Date(entry.readAt).toISOString(),
    };
  }
}

function wholeOrNull(value: number | null): number | null {
  return value === null || !Number.isFinite(value) || value < 0 ? null : Math.round(value);
}
