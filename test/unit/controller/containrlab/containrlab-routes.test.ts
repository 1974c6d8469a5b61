import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../../helpers/controller-fakes.js';

const ID = '0123456789abcdef0123456789abcdef';
const auth = { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}` };

describe('ContainrLab flat API on the fake runtime', () => {
  let controller: TestController;
  let labs: string;

  beforeEach(async () => {
    labs = await mkdtemp(join(tmpdir(), 'labs-'));
    await mkdir(join(labs, 'lab1', 'starter'), { recursive: true });
    await mkdir(join(labs, 'nostarter'));
    controller = await createTestController({ CONTAINRLAB_COMPAT: 'true', LABS_ROOT: labs, RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
  });
  afterEach(async () => {
    await controller.close();
    await rm(labs, { recursive: true, force: true });
  });

  it('is off by default', async () => {
    await controller.restart({ CONTAINRLAB_COMPAT: 'false' });
    expect((await controller.app.inject({ method: 'GET', url: '/healthz', headers: auth })).statusCode).toBe(404);
  });

  it('needs the API token like every route', async () => {
    expect((await controller.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(401);
    const ok = await controller.app.inject({ method: 'GET', url: '/healthz', headers: auth });
    expect(ok.json()).toEqual({ ok: true });
  });

  it('answers a malformed body 422 with the issues under detail', async () => {
    for (const payload of [{ session_id: ID }, { session_id: 'Not An Id', lab_slug: 'lab1' }, 'not json']) {
      const res = await controller.app.inject({ method: 'POST', url: '/start', headers: { ...auth, 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });
      expect(res.statusCode).toBe(422);
      expect(res.json()).toHaveProperty('detail');
    }
  });

  it('404s a lab without a starter folder, a slug that is not one name, and sessions it does not know', async () => {
    for (const slug of ['missing', 'nostarter', '../lab1', 'lab1/starter', '.']) {
      const res = await controller.app.inject({ method: 'POST', url: '/start', headers: auth, payload: { session_id: ID, lab_slug: slug } });
      expect(res.statusCode, slug).toBe(404);
      expect(typeof res.json().detail).toBe('string');
    }
    for (const url of ['/exec', '/build', '/run/stop', '/fs/list']) {
      const res = await controller.app.inject({ method: 'POST', url, headers: auth, payload: { session_id: ID, command: ['true'], image: 'x', path: 'a' } });
      expect(res.statusCode, url).toBe(404);
    }
  });

  it('stops idempotently, keeping the workspace when asked', async () => {
    expect((await controller.app.inject({ method: 'POST', url: '/stop', headers: auth, payload: { session_id: ID } })).json()).toEqual({ ok: true });
    expect(controller.runtime.kept.size).toBe(0);
  });
});

describe('kept workspaces on the fake runtime', () => {
  let controller: TestController;
  beforeEach(async () => {
    controller = await createTestController({ KEPT_WORKSPACE_TTL_SECONDS: '60' });
  });
  afterEach(async () => controller.close());

  it('keeps a deleted session workspace until its time, then the sweep removes it', async () => {
    expect((await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'keep' } })).statusCode).toBe(201);
    const deleted = await controller.app.inject({ method: 'DELETE', url: '/sessions/keep?keep_workspace=true' });
    expect(deleted.json()).toMatchObject({ found: true, workspace_kept_until: new Date(controller.clock.now + 60_000).toISOString() });
    expect(controller.runtime.kept.has('keep')).toBe(true);
    controller.clock.now += 61_000;
    // The next session of that id no longer gets it back: it is past its time.
    expect((await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'keep' } })).statusCode).toBe(201);
    expect(controller.runtime.specs.at(-1)?.restoreWorkspaceFrom).toBeUndefined();
    expect(controller.runtime.kept.size).toBe(0);
  });

  it('gives a kept workspace back to a new session of that id, once', async () => {
    await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'back' } });
    await controller.app.inject({ method: 'DELETE', url: '/sessions/back?keep_workspace=true' });
    await controller.restart();
    expect((await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'back' } })).statusCode).toBe(201);
    expect(controller.runtime.specs.at(-1)?.restoreWorkspaceFrom).toBe('kept.back');
    expect(controller.runtime.kept.size).toBe(0);
  });

  it('a delete without keep_workspace keeps nothing; an unknown template is 404 TEMPLATE_NOT_FOUND', async () => {
    await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'plain' } });
    expect((await controller.app.inject({ method: 'DELETE', url: '/sessions/plain' })).json()).not.toHaveProperty('workspace_kept_until');
    expect(controller.runtime.kept.size).toBe(0);
    const res = await controller.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'tpl', workspace: { template: 'none' } } });
    expect(res.statusCode).toBe(404);
    expect(res.json().code).toBe('TEMPLATE_NOT_FOUND');
  });

  it('the sweep removes kept workspaces past their time and leaves the others', async () => {
    controller.runtime.kept.set('old', { volume: 'kept.old', sessionId: 'old', until: new Date(controller.clock.now - 1) });
    controller.runtime.kept.set('new', { volume: 'kept.new', sessionId: 'new', until: new Date(controller.clock.now + 60_000) });
    await controller.restart({ CLEANUP_INTERVAL_SECONDS: '1' });
    for (let i = 0; i < 50 && controller.runtime.kept.has('old'); i++) await new Promise((r) => setTimeout(r, 100));
    expect([...controller.runtime.kept.keys()]).toEqual(['new']);
  });
});
