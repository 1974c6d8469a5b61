import { lstat, mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SessionOwner } from '../../../../controller/runtime/session-runtime.js';
import { Reaper } from '../../../../controller/sessions/reaper.js';
import { SessionStore } from '../../../../controller/sessions/session-store.js';
import { FakeSessionRuntime } from '../../../helpers/controller-fakes.js';

const CREATED_AT = new Date('2025-10-27T22:00:00Z');
// lstat: a claimed member's link counts even when what it points to is gone.
const present = (path: string): Promise<boolean> =>
  lstat(path).then(
    () => true,
    () => false,
  );

describe('reaper', () => {
  let socketsDir: string;
  let store: SessionStore;
  let runtime: FakeSessionRuntime;
  let reaper: Reaper;

  beforeEach(async () => {
    socketsDir = await mkdtemp(join(tmpdir(), 'reaper-'));
    store = new SessionStore(socketsDir, 'one');
    runtime = new FakeSessionRuntime();
    reaper = new Reaper({ runtime, store, log: pino({ level: 'silent' }) });
  });
  afterEach(async () => rm(socketsDir, { recursive: true, force: true }));

  // What a launch leaves: the owner's folder with its record, a container and its two volumes.
  const make = async (owner: SessionOwner, containerName: string, on = store): Promise<void> => {
    if (owner.kind === 'pool') {
      const record = { pool_id: owner.poolId, instance: 'one', container_name: containerName, created_at: CREATED_AT.toISOString() };
      await on.create(owner, 'token', record);
    } else {
      const at = CREATED_AT.toISOString();
      await on.create(owner, 'token', { session_id: owner.sessionId, instance: 'one', container_name: containerName, created_at: at, expires_at: at });
    }
    await runtime.createSession({ owner, containerName, agentDir: on.agentDir(owner), createdAt: CREATED_AT });
  };
  const volumeNames = (): string[] => [...runtime.volumes.keys()].sort();

  it('removes the volumes and folders of owners that are gone, and nothing of the living, of another instance or unknown', async () => {
    await make({ kind: 'session', sessionId: 'alive' }, 'sess-alive');
    await make({ kind: 'session', sessionId: 'gone' }, 'sess-gone');
    await make({ kind: 'pool', poolId: 'aaaaaaaaaaaa' }, 'sess-warm.aaaaaaaaaaaa');
    await make({ kind: 'pool', poolId: 'bbbbbbbbbbbb' }, 'sess-warm.bbbbbbbbbbbb');
    const theirs = new SessionStore(socketsDir, 'two');
    const at = CREATED_AT.toISOString();
    await theirs.create({ kind: 'session', sessionId: 'theirs' }, 'token', { session_id: 'theirs', instance: 'two', container_name: 'x', created_at: at, expires_at: at });
    await mkdir(join(socketsDir, 'Not A Session'));
    await mkdir(join(socketsDir, 'warm.short'));
    const alive = (owner: SessionOwner): boolean => (owner.kind === 'pool' ? owner.poolId === 'aaaaaaaaaaaa' : owner.sessionId === 'alive');

    await reaper.reap(alive);

    expect(volumeNames()).toEqual([
      'sess-alive-docker',
      'sess-alive-workspace',
      'sess-warm.aaaaaaaaaaaa-docker',
      'sess-warm.aaaaaaaaaaaa-workspace',
    ]);
    expect((await readdir(socketsDir)).sort()).toEqual(['Not A Session', 'alive', 'theirs', 'warm.aaaaaaaaaaaa', 'warm.short']);
    // Containers are never the reaper's to sweep: a container's owner is alive by definition.
    expect(runtime.containers.size).toBe(4);
  });

  it('removes one session: its container, volumes and folder, and nothing of another', async () => {
    await make({ kind: 'session', sessionId: 'a' }, 'sess-a');
    await make({ kind: 'session', sessionId: 'b' }, 'sess-b');

    await reaper.remove({ kind: 'session', sessionId: 'a' }, 'sess-a');

    expect([...runtime.containers.keys()]).toEqual(['sess-b']);
    expect(volumeNames()).toEqual(['sess-b-docker', 'sess-b-workspace']);
    expect(await present(join(socketsDir, 'a'))).toBe(false);
    expect(await present(join(socketsDir, 'b', 'agent', 'token'))).toBe(true);
  });

  it('leaves the container under a name when another owner has it', async () => {
    await make({ kind: 'session', sessionId: 'a' }, 'sess-a');

    await reaper.remove({ kind: 'session', sessionId: 'b' }, 'sess-a');

    expect([...runtime.containers.keys()]).toEqual(['sess-a']);
    expect(volumeNames()).toEqual(['sess-a-docker', 'sess-a-workspace']);
  });

  it('removes a claimed pool member by its pool id: container, volumes, the session folder and the link to it', async () => {
    const member = { kind: 'pool', poolId: 'cccccccccccc' } as const;
    await make(member, 'sess-warm.cccccccccccc');
    const at = CREATED_AT.toISOString();
    await store.claimPoolMember({ session_id: 'learner', instance: 'one', container_name: 'sess-learner', created_at: at, expires_at: at, pool_id: member.poolId });
    await runtime.renameSession('sess-warm.cccccccccccc', 'sess-learner');
    expect(await readlink(join(socketsDir, 'warm.cccccccccccc'))).toBe('learner');

    await reaper.remove(member, 'sess-learner', 'learner');

    expect(runtime.containers.size).toBe(0);
    expect(runtime.volumes.size).toBe(0);
    expect(await present(join(socketsDir, 'learner'))).toBe(false);
    expect(await present(join(socketsDir, 'warm.cccccccccccc'))).toBe(false);
  });
});
