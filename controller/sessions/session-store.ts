import { constants } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { SessionId } from '../../shared/schemas/session.js';
import { SESSION_PATHS } from '../../core/session-layout.js';
import type { AgentEndpoint } from '../proxy/agent-target.js';
import type { SessionOwner } from '../runtime/session-runtime.js';
import type { StateStore } from './state-store.js';

const STATE_FILE = 'session.json';
const POOL_FILE = 'pool.json';
const AGENT_DIR = 'agent';
const AGENT_SOCKET = basename(SESSION_PATHS.agentSocket);
const AGENT_TOKEN = basename(SESSION_PATHS.tokenFile);
// A `.` never occurs in a session id, so a pool folder (or container name) cannot collide with a session's.
const POOL_PREFIX = 'warm.';

/** A warm pool member's id: its folder, container and volume names and its labels carry it. */
export const PoolId = z.string().regex(/^[a-f0-9]{12}$/);

// What labels cannot hold, because they are fixed at creation: an extended expiry, and which session a warm pool
// member became.
const SessionState = z.object({
  session_id: SessionId,
  instance: z.string(),
  container_name: z.string(),
  created_at: z.iso.datetime(),
  expires_at: z.iso.datetime(),
  /** Set when the session was a warm pool member: its container and volumes are labelled with this pool id. */
  pool_id: PoolId.optional(),
});
export type SessionState = z.infer<typeof SessionState>;

// A pool member's own record, for telling this controller's members from another instance's in a shared folder.
const PoolState = z.object({
  pool_id: PoolId,
  instance: z.string(),
  container_name: z.string(),
  created_at: z.iso.datetime(),
});
export type PoolState = z.infer<typeof PoolState>;

/** What the folder of each kind of owner holds beside its agent folder: a session's state, a pool member's record. */
export type RecordOf<O extends SessionOwner> = O extends { kind: 'session' } ? SessionState : PoolState;

/**
 * One folder per owner under SOCKETS_DIR: `agent/` is bind-mounted into the session (the agent's token file,
 * read at its start and again when a request's token does not match, and its socket); `session.json` stays on the
 * host, out of the session's reach. Keeping the state beside the socket means one `rm -r` removes both, and a
 * controller in a container sees the same paths as the engine.
 *
 * A warm pool member starts in `warm.<pool id>/` (with `pool.json`). A session claims it by writing its
 * `session.json` there (the claim's commit point), then the folder is renamed to the session's id and
 * `warm.<pool id>` becomes a symlink to it, so the container's bind mount, which names the old path, still
 * resolves when Docker restarts the container.
 */
export class SessionStore implements StateStore {
  // The agent rereads its token file when a request's token does not match.
  readonly tokensTakeEffectAtOnce = true;

  constructor(
    private readonly socketsDir: string,
    private readonly instance: string,
  ) {}

  agentEndpoint(owner: SessionOwner): AgentEndpoint {
    return { kind: 'unix', socketPath: this.agentSocketPath(owner) };
  }

  folder(owner: SessionOwner): string {
    return join(this.socketsDir, owner.kind === 'pool' ? `${POOL_PREFIX}${owner.poolId}` : owner.sessionId);
  }

  agentDir(owner: SessionOwner): string {
    return join(this.folder(owner), AGENT_DIR);
  }

  agentSocketPath(owner: SessionOwner): string {
    return join(this.agentDir(owner), AGENT_SOCKET);
  }

  agentTokenFile(owner: SessionOwner): string {
    return join(this.agentDir(owner), AGENT_TOKEN);
  }

  /**
   * Creates the owner's folder with its agent token and its record (emptied first: a leftover of a failed run must
   * not leak into a new session).
   */
  async create<O extends SessionOwner>(owner: O, agentToken: string, record: RecordOf<O>): Promise<void> {
    await this.remove(owner);
    // Root only: the learner inside the session cannot enter the mounted folder, other host users cannot either.
    await mkdir(this.agentDir(owner), { recursive: true, mode: 0o700 });
    await writeAtomically(this.agentTokenFile(owner), agentToken);
    await writeAtomically(join(this.folder(owner), owner.kind === 'pool' ? POOL_FILE : STATE_FILE), JSON.stringify(record, null, 2));
  }

  /** Writes a session's state atomically (rename), so a crash never leaves half a file. */
  async write(state: SessionState): Promise<void> {
    const folder = this.folder({ kind: 'session', sessionId: state.session_id });
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await writeAtomically(join(folder, STATE_FILE), JSON.stringify(state, null, 2));
  }

  /** The session's state, or null when it is missing or unreadable. */
  async read(sessionId: string): Promise<SessionState | null> {
    return readJson(join(this.folder({ kind: 'session', sessionId }), STATE_FILE), SessionState);
  }

  /** Replaces a running agent's token (a claimed pool member's); whole or not at all, as the agent may read it any time. */
  async writeToken(owner: SessionOwner, agentToken: string): Promise<void> {
    await writeAtomically(this.agentTokenFile(owner), agentToken);
  }

  /** The agent's token, or null when the file is gone. */
  async readToken(owner: SessionOwner): Promise<string | null> {
    return readTokenFile(this.agentTokenFile(owner));
  }

  /** Removes the owner's folder; a claimed pool member's is a link, and then only the link goes. */
  async remove(owner: SessionOwner): Promise<void> {
    await rm(this.folder(owner), { recursive: true, force: true });
  }

  /** A pool member's own record, also through the link of a claimed one; null when missing or unreadable. */
  async readPoolMember(poolId: string): Promise<PoolState | null> {
    return readJson(join(this.folder({ kind: 'pool', poolId }), POOL_FILE), PoolState);
  }

  /** Makes a pool member the session `state` names: the state written (the commit), then the folder moved. */
  async claimPoolMember(state: SessionState & { pool_id: string }): Promise<void> {
    await writeAtomically(join(this.folder({ kind: 'pool', poolId: state.pool_id }), STATE_FILE), JSON.stringify(state, null, 2));
    await this.settleClaim(state.pool_id, state.session_id);
  }

  /**
   * Finishes a claim (idempotent; reconcile repeats it after a crash): the pool folder becomes the session's
   * folder, and its old path a link to it.
   */
  async settleClaim(poolId: string, sessionId: string): Promise<void> {
    const poolFolder = this.folder({ kind: 'pool', poolId });
    const sessionFolder = this.folder({ kind: 'session', sessionId });
    const entry = await lstat(poolFolder).catch(() => null);
    if (entry?.isSymbolicLink()) return;
    if (entry?.isDirectory()) {
      // The id was free when the claim began: anything under its name is a leftover of an earlier failure.
      await rm(sessionFolder, { recursive: true, force: true });
      await rename(poolFolder, sessionFolder);
    }
    await symlink(sessionId, poolFolder);
  }

  /** Which session claimed a pool member, by the state in its folder (or what its link points to); null if none. */
  async readClaim(poolId: string): Promise<SessionState | null> {
    return readJson(join(this.folder({ kind: 'pool', poolId }), STATE_FILE), SessionState);
  }

  /**
   * Pool id → session id of every claim on disk: the sessions' states naming a pool id, and claims whose folder
   * was not moved yet. Reconcile tells claimed pool containers from unclaimed ones with it.
   */
  async poolClaims(): Promise<Map<string, string>> {
    const claims = new Map<string, string>();
    const owners = await this.list();
    for (const owner of owners) {
      if (owner.kind !== 'session') continue;
      const state = await this.read(owner.sessionId);
      if (state?.pool_id) claims.set(state.pool_id, owner.sessionId);
    }
    for (const owner of owners) {
      if (owner.kind !== 'pool' || claims.has(owner.poolId)) continue;
      const state = await this.readClaim(owner.poolId);
      if (state?.instance === this.instance && state.pool_id === owner.poolId) claims.set(owner.poolId, state.session_id);
    }
    return claims;
  }

  /**
   * The owners of the folders (and a claimed pool member's links) this controller owns: its instance in their
   * record, or no readable record at all. Another instance's folders in a shared SOCKETS_DIR are left out.
   */
  async list(): Promise<SessionOwner[]> {
    const owners: SessionOwner[] = [];
    for (const name of await readdir(this.socketsDir).catch(() => [] as string[])) {
      const poolId = name.startsWith(POOL_PREFIX) ? name.slice(POOL_PREFIX.length) : null;
      if (poolId !== null) {
        if (!PoolId.safeParse(poolId).success) continue;
        const record = await this.readPoolMember(poolId);
        if (!record || record.instance === this.instance) owners.push({ kind: 'pool', poolId });
      } else if (SessionId.safeParse(name).success) {
        const state = await this.read(name);
        if (!state || state.instance === this.instance) owners.push({ kind: 'session', sessionId: name });
      }
    }
    return owners;
  }

  async ensureRoot(): Promise<void> {
    await mkdir(this.socketsDir, { recursive: true, mode: 0o711 });
  }

}

// A rename within the folder: a reader (the agent, a restarted controller) sees the old file or the new, never half.
// A session's root may write the agent folder (on a remapped engine): a name planted there is removed, never followed.
async function writeAtomically(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await rm(tmp, { force: true });
  await writeFile(tmp, content, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
}

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    const parsed = schema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

async function readTokenFile(file: string): Promise<string | null> {
  try {
    // Never through a link or into a pipe the session's root may have put in its place.
    return (await readFile(file, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK })).trim() || null;
  } catch {
    return null;
  }
}
