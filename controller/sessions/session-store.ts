import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { SessionId } from '../../shared/schemas/session.js';
import { SESSION_PATHS } from '../../shared/session-security.js';

const STATE_FILE = 'session.json';
const AGENT_DIR = 'agent';
const AGENT_SOCKET = basename(SESSION_PATHS.agentSocket);
const AGENT_TOKEN = basename(SESSION_PATHS.tokenFile);

// What labels cannot hold, because they are fixed at creation: an extended expiry.
const SessionState = z.object({
  session_id: SessionId,
  instance: z.string(),
  container_name: z.string(),
  created_at: z.iso.datetime(),
  expires_at: z.iso.datetime(),
});
export type SessionState = z.infer<typeof SessionState>;

/**
 * One folder per session under SOCKETS_DIR: `agent/` is bind-mounted into the session (the agent's token file,
 * read once at its start, and its socket); `session.json` stays on the host, out of the session's reach. Keeping
 * the state beside the socket means one `rm -r` removes both, and a controller in a container sees the same
 * paths as the engine.
 */
export class SessionStore {
  constructor(
    private readonly socketsDir: string,
    private readonly instance: string,
  ) {}

  folder(sessionId: string): string {
    return join(this.socketsDir, sessionId);
  }

  agentDir(sessionId: string): string {
    return join(this.folder(sessionId), AGENT_DIR);
  }

  agentSocketPath(sessionId: string): string {
    return join(this.agentDir(sessionId), AGENT_SOCKET);
  }

  agentTokenFile(sessionId: string): string {
    return join(this.agentDir(sessionId), AGENT_TOKEN);
  }

  /** Creates the session's folder (emptied first: a leftover of a failed run must not leak into a new session). */
  async create(state: SessionState, agentToken: string): Promise<void> {
    await rm(this.folder(state.session_id), { recursive: true, force: true });
    // Root only: the learner inside the session cannot enter the mounted folder, other host users cannot either.
    await mkdir(this.agentDir(state.session_id), { recursive: true, mode: 0o700 });
    await writeFile(this.agentTokenFile(state.session_id), agentToken, { mode: 0o600 });
    await this.write(state);
  }

  /** Writes the state atomically (rename), so a crash never leaves half a file. */
  async write(state: SessionState): Promise<void> {
    await mkdir(this.folder(state.session_id), { recursive: true, mode: 0o700 });
    const file = join(this.folder(state.session_id), STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    await rename(tmp, file);
  }

  /** The session's state, or null when it is missing or unreadable. */
  async read(sessionId: string): Promise<SessionState | null> {
    try {
      const parsed = SessionState.safeParse(JSON.parse(await readFile(join(this.folder(sessionId), STATE_FILE), 'utf8')));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  /** The session agent's token, or null when the file is gone. */
  async readToken(sessionId: string): Promise<string | null> {
    try {
      return (await readFile(this.agentTokenFile(sessionId), 'utf8')).trim() || null;
    } catch {
      return null;
    }
  }

  async remove(sessionId: string): Promise<void> {
    await rm(this.folder(sessionId), { recursive: true, force: true });
  }

  /** Ids of the session folders this controller owns (its instance in the state, or no readable state at all). */
  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.socketsDir);
    } catch {
      return [];
    }
    const owned: string[] = [];
    for (const name of names) {
      if (!SessionId.safeParse(name).success) continue;
      const state = await this.read(name);
      if (!state || state.instance === this.instance) owned.push(name);
    }
    return owned;
  }

  async ensureRoot(): Promise<void> {
    await mkdir(this.socketsDir, { recursive: true, mode: 0o711 });
  }
}
