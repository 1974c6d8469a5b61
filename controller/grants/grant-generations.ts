import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../../shared/errors.js';

const GENERATION_FILE = 'grants.json';

/**
 * Each session's grant generation: a random value kept in the session's own folder on the host (out of the
 * session's reach), made at its first grant and replaced by each revocation. The folder goes with the session, so a
 * new session under the same id starts without one and no grant of the old one ever passes again. Read from disk at
 * every check: nothing cached can outlive a revocation or a session.
 */
export class GrantGenerations {
  readonly #pending = new Map<string, Promise<string>>();

  constructor(private readonly folderOf: (sessionId: string) => string) {}

  /** The session's generation; null when it has none (never granted, or gone). */
  async current(sessionId: string): Promise<string | null> {
    try {
      const parsed = JSON.parse(await readFile(this.#file(sessionId), 'utf8')) as { generation?: unknown };
      return typeof parsed.generation === 'string' ? parsed.generation : null;
    } catch {
      return null;
    }
  }

  /** The session's generation, made now if it has none. */
  ensure(sessionId: string): Promise<string> {
    return this.#serialised(sessionId, async () => (await this.current(sessionId)) ?? this.#write(sessionId));
  }

  /** A new generation: every grant minted before stops passing. */
  raise(sessionId: string): Promise<string> {
    return this.#serialised(sessionId, () => this.#write(sessionId));
  }

  // One change per session at a time: two first grants at once must not each write their own generation.
  #serialised(sessionId: string, change: () => Promise<string>): Promise<string> {
    const previous = this.#pending.get(sessionId) ?? Promise.resolve('');
    const next = previous.catch(() => '').then(change);
    this.#pending.set(sessionId, next);
    void next.finally(() => {
      if (this.#pending.get(sessionId) === next) this.#pending.delete(sessionId);
    }).catch(() => {});
    return next;
  }

  async #write(sessionId: string): Promise<string> {
    const generation = randomBytes(16).toString('base64url');
    const file = this.#file(sessionId);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify({ generation }), { mode: 0o600 });
      await rename(tmp, file);
    } catch (error) {
      // The folder went with its session in the meantime.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError('SESSION_NOT_FOUND', `no session ${sessionId}`);
      throw error;
    }
    return generation;
  }

  #file(sessionId: string): string {
    return join(this.folderOf(sessionId), GENERATION_FILE);
  }
}
