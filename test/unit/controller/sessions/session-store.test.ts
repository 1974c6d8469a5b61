import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionStore, type SessionState } from '../../../../controller/sessions/session-store.js';

const AT = '2025-10-27T22:00:00.000Z';
const sessionState = (sessionId: string, instance = 'one'): SessionState => ({
  session_id: sessionId,
  instance,
  container_name: `sess-${sessionId}`,
  created_at: AT,
  expires_at: AT,
});
const poolRecord = (poolId: string, instance = 'one') => ({ pool_id: poolId, instance, container_name: `sess-warm.${poolId}`, created_at: AT });

describe('session store', () => {
  let socketsDir: string;
  let store: SessionStore;

  beforeEach(async () => {
    socketsDir = await mkdtemp(join(tmpdir(), 'store-'));
    store = new SessionStore(socketsDir, 'one');
  });
  afterEach(async () => rm(socketsDir, { recursive: true, force: true }));

  it('gives a session and a pool member each a root-only folder with its token and its own record', async () => {
    await store.create({ kind: 'session', sessionId: 'learner' }, 'session-token', sessionState('learner'));
    await store.create({ kind: 'pool', poolId: 'aaaaaaaaaaaa' }, 'pool-token', poolRecord('aaaaaaaaaaaa'));

    expect(store.agentSocketPath({ kind: 'session', sessionId: 'learner' })).toBe(join(socketsDir, 'learner', 'agent', 'agent.sock'));
    expect(store.agentSocketPath({ kind: 'pool', poolId: 'aaaaaaaaaaaa' })).toBe(join(socketsDir, 'warm.aaaaaaaaaaaa', 'agent', 'agent.sock'));
    for (const [folder, token] of [
      ['learner', 'session-token'],
      ['warm.aaaaaaaaaaaa', 'pool-token'],
    ] as const) {
      expect((await stat(join(socketsDir, folder, 'agent'))).mode & 0o777).toBe(0o700);
      expect((await stat(join(socketsDir, folder, 'agent', 'token'))).mode & 0o777).toBe(0o600);
      expect(await readFile(join(socketsDir, folder, 'agent', 'token'), 'utf8')).toBe(token);
    }
    expect(await store.read('learner')).toEqual(sessionState('learner'));
    expect(await store.readPoolMember('aaaaaaaaaaaa')).toEqual(poolRecord('aaaaaaaaaaaa'));
    expect(await store.readToken({ kind: 'pool', poolId: 'aaaaaaaaaaaa' })).toBe('pool-token');
  });

  it('empties a folder a failed run left before creating it again', async () => {
    await mkdir(join(socketsDir, 'again', 'agent'), { recursive: true });
    await writeFile(join(socketsDir, 'again', 'leftover'), 'from before');
    await store.create({ kind: 'session', sessionId: 'again' }, 'token', sessionState('again'));
    await expect(stat(join(socketsDir, 'again', 'leftover'))).rejects.toThrow(/ENOENT/);
  });

  it('lists the owners of its instance of both kinds, those without a readable record too, and nothing else', async () => {
    await store.create({ kind: 'session', sessionId: 'mine' }, 'token', sessionState('mine'));
    await store.create({ kind: 'pool', poolId: 'aaaaaaaaaaaa' }, 'token', poolRecord('aaaaaaaaaaaa'));
    const theirs = new SessionStore(socketsDir, 'two');
    await theirs.create({ kind: 'session', sessionId: 'theirs' }, 'token', sessionState('theirs', 'two'));
    await theirs.create({ kind: 'pool', poolId: 'bbbbbbbbbbbb' }, 'token', poolRecord('bbbbbbbbbbbb', 'two'));
    await mkdir(join(socketsDir, 'half-made', 'agent'), { recursive: true });
    await mkdir(join(socketsDir, 'warm.cccccccccccc'));
    for (const stray of ['Upper', 'warm.xyz', 'warm.', '.hidden']) await mkdir(join(socketsDir, stray));

    const owners = await store.list();

    expect(owners.map((o) => (o.kind === 'pool' ? `pool:${o.poolId}` : o.sessionId)).sort()).toEqual([
      'half-made',
      'mine',
      'pool:aaaaaaaaaaaa',
      'pool:cccccccccccc',
    ]);
  });

  it('moves a claimed member to its session and leaves a link that removing the member takes, not the session', async () => {
    const member = { kind: 'pool', poolId: 'aaaaaaaaaaaa' } as const;
    await store.create(member, 'pool-token', poolRecord('aaaaaaaaaaaa'));
    await store.claimPoolMember({ ...sessionState('learner'), pool_id: 'aaaaaaaaaaaa' });

    expect(await readlink(join(socketsDir, 'warm.aaaaaaaaaaaa'))).toBe('learner');
    expect(await store.readToken({ kind: 'session', sessionId: 'learner' })).toBe('pool-token');
    expect(await store.poolClaims()).toEqual(new Map([['aaaaaaaaaaaa', 'learner']]));

    await store.remove(member);

    await expect(lstat(join(socketsDir, 'warm.aaaaaaaaaaaa'))).rejects.toThrow(/ENOENT/);
    expect(await store.read('learner')).toMatchObject({ session_id: 'learner', pool_id: 'aaaaaaaaaaaa' });
  });

  it('knows a claim a crash left before its folder moved, and finishes it', async () => {
    await store.create({ kind: 'pool', poolId: 'aaaaaaaaaaaa' }, 'token', poolRecord('aaaaaaaaaaaa'));
    await writeFile(join(socketsDir, 'warm.aaaaaaaaaaaa', 'session.json'), JSON.stringify({ ...sessionState('learner'), pool_id: 'aaaaaaaaaaaa' }));

    expect(await store.poolClaims()).toEqual(new Map([['aaaaaaaaaaaa', 'learner']]));
    await store.settleClaim('aaaaaaaaaaaa', 'learner');

    expect(await readlink(join(socketsDir, 'warm.aaaaaaaaaaaa'))).toBe('learner');
    expect(await store.read('learner')).toMatchObject({ pool_id: 'aaaaaaaaaaaa' });
  });
});
