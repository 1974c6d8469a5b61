import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionStore } from '../../../../controller/sessions/session-store.js';

// On a remapped engine the session's root may write the agent folder: names it plants there must not steer the
// controller (the host's root) to a host file.
describe("the session store in an agent folder the session's root can write", () => {
  const SESSION = { kind: 'session', sessionId: 'links-test' } as const;
  let dir: string;
  let store: SessionStore;
  let hostFile: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'store-links-'));
    store = new SessionStore(join(dir, 'sockets'), 'test');
    const now = new Date().toISOString();
    await store.create(SESSION, 'first', { session_id: SESSION.sessionId, instance: 'test', container_name: 'c', created_at: now, expires_at: now });
    hostFile = join(dir, 'host-file');
    await writeFile(hostFile, 'host secret\n');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('replaces the token without writing through a link planted at its temporary name', async () => {
    await symlink(hostFile, `${store.agentTokenFile(SESSION)}.${process.pid}.tmp`);
    await store.writeToken(SESSION, 'second');
    expect(await readFile(hostFile, 'utf8')).toBe('host secret\n');
    expect(await store.readToken(SESSION)).toBe('second');
  });

  it('never reads a host file through a token swapped for a link', async () => {
    await rm(store.agentTokenFile(SESSION));
    await symlink(hostFile, store.agentTokenFile(SESSION));
    expect(await store.readToken(SESSION)).toBeNull();
  });
});
