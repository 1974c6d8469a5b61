import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';
import { buildBomb, buildTar, hostileArchives } from '../../helpers/hostile-archives.js';
import { runnerError } from '../../helpers/runner-error.js';

// The agent's default caps (AGENT_ARCHIVE_MAX_BYTES, AGENT_ARCHIVE_MAX_ENTRIES).
const MAX_BYTES = 512 * 1024 * 1024;
const MAX_ENTRIES = 20_000;

async function tarNames(gz: Uint8Array): Promise<string[]> {
  const names: string[] = [];
  const unpack = extract();
  unpack.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.resume();
    next();
  });
  Readable.from([gunzipSync(gz)]).pipe(unpack);
  await new Promise<void>((resolve) => unpack.on('finish', () => resolve()));
  return names;
}

describe.sequential('workspaces in and out: templates, kept workspaces, archives', () => {
  let controller: E2EController;
  let templates: string;
  const sh = (id: string, script: string) => controller.client.session(id).exec({ command: ['sh', '-c', script] });
  const putArchive = (id: string, path: string, archive: Buffer) => controller.client.session(id).uploadArchive(path, new Uint8Array(archive));

  beforeAll(async () => {
    await buildImages();
    templates = await mkdtemp(join(tmpdir(), 'runner-templates-'));
    await mkdir(join(templates, 'starter', 'src'), { recursive: true });
    await writeFile(join(templates, 'starter', 'src', 'main.py'), 'print("template")\n');
    await writeFile(join(templates, 'starter', 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 });
    // A link in the operator's folder travels as a link; the jail refuses it when it points out.
    await symlink('src/main.py', join(templates, 'starter', 'main-link'));
    await mkdir(join(templates, 'escaping'));
    await symlink('/etc', join(templates, 'escaping', 'etc'));
    await symlink('/etc', join(templates, 'linked'));
    controller = await startE2EController({ TEMPLATES_DIR: templates, KEPT_WORKSPACE_TTL_SECONDS: '3600' });
  });
  afterAll(async () => {
    await controller?.destroy();
    await rm(templates, { recursive: true, force: true });
  });

  it('seeds a new workspace from a template, files owned by the learner, links kept as links', async () => {
    await controller.client.createSession({ session_id: 'tmpl', workspace: { template: 'starter' } });
    expect(controller.lastResponse().status).toBe(201);
    const out = await sh('tmpl', 'cat src/main.py; ./run.sh; readlink main-link; stat -c "%u %a" run.sh src/main.py');
    expect(out.logs).toEqual(['print("template")', 'run', 'src/main.py', '1000 755', '1000 644']);
  });

  it('refuses unknown templates (404), names that are not one segment (400), links out of the template dir', async () => {
    const create = (template: string) => runnerError(controller.client.createSession({ session_id: 'nope', workspace: { template } }));
    expect(await create('missing')).toMatchObject({ status: 404, code: 'TEMPLATE_NOT_FOUND' });
    expect(await create('linked')).toMatchObject({ status: 404, code: 'TEMPLATE_NOT_FOUND' });
    expect(await create('../starter')).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(await create('a/b')).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(await create('escaping')).toMatchObject({ code: 'ARCHIVE_REFUSED' });
    expect(await controller.sessionIds()).not.toContain('nope');
  });

  it('streams a folder as .tar.gz through the controller', async () => {
    const archive = await controller.client.session('tmpl').downloadArchive('/workspace/src');
    expect(controller.lastResponse()).toMatchObject({ status: 200 });
    expect(controller.lastResponse().headers.get('content-type')).toBe('application/gzip');
    expect(await tarNames(archive)).toContain('main.py');
    expect(await runnerError(controller.client.session('tmpl').downloadArchive('/etc'))).toMatchObject({ status: 403, code: 'PATH_OUTSIDE_WORKSPACE' });
  });

  it('extracts an uploaded .tar.gz or .tar as the learner', async () => {
    const archive = await buildTar([{ name: 'a/b.txt', body: 'hello' }, { name: 'a/c', type: 'symlink', linkname: 'b.txt' }], true);
    expect(await putArchive('tmpl', '/workspace/up', archive)).toEqual({ path: '/workspace/up', entries: 2, bytes: expect.any(Number) });
    expect(controller.lastResponse().status).toBe(200);
    await putArchive('tmpl', 'up2', await buildTar([{ name: 'd.txt', body: 'plain' }]));
    expect(controller.lastResponse().status).toBe(200);
    expect((await sh('tmpl', 'cat up/a/c; echo; cat up2/d.txt; echo; stat -c %u up/a/b.txt')).logs).toEqual(['hello', 'plain', '1000']);
  });

  for (const [attack, entries] of Object.entries(hostileArchives('outside'))) {
    it(`refuses ${attack} with a 4xx and writes nothing outside`, async () => {
      await sh('tmpl', 'rm -rf /workspace/jail /workspace/outside /tmp/through.txt; mkdir -p /workspace/jail /workspace/outside; echo secret >/workspace/outside/secret.txt; echo old >/workspace/jail/existing.txt');
      const refused = await runnerError(putArchive('tmpl', '/workspace/jail', await buildTar(entries, true)));
      expect(refused.status).toBeGreaterThanOrEqual(400);
      expect(refused.status).toBeLessThan(500);
      expect(refused.code).toMatch(/^ARCHIVE_/);
      const after = await sh('tmpl', 'ls -A /workspace/outside; cat /workspace/outside/secret.txt; ls /tmp/through.txt /through.txt 2>&1 | grep -c "No such"');
      expect(after.logs).toEqual(['secret.txt', 'secret', '2']);
    });
  }

  it('stops more entries than the cap, and a decompression bomb, with 413', async () => {
    const many = await buildTar(Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => ({ name: `f/${i}` })), true);
    expect(await runnerError(putArchive('tmpl', '/workspace/many', many))).toMatchObject({ status: 413, code: 'ARCHIVE_TOO_LARGE' });
    // A few hundred KB of .tar.gz that would unpack past the byte cap.
    const bomb = Buffer.concat(await buildBomb(MAX_BYTES + 64 * 1024 * 1024).toArray());
    expect(await runnerError(putArchive('tmpl', '/workspace/bomb', bomb))).toMatchObject({ status: 413, code: 'ARCHIVE_TOO_LARGE' });
    expect((await sh('tmpl', 'du -sm /workspace/bomb | cut -f1')).logs[0]).toMatch(/^\d+$/);
  });

  it('keeps a workspace on delete, across a controller restart, and gives it back to a new session of that id', async () => {
    await sh('tmpl', 'echo learner-work >/workspace/notes.txt; rm -rf /workspace/bomb /workspace/many');
    const deleted = await controller.client.deleteSession('tmpl', { keep_workspace: true });
    expect(controller.lastResponse().status).toBe(200);
    expect(deleted).toMatchObject({ found: true, workspace_kept_until: expect.any(String) });
    await controller.restart();
    await controller.client.createSession({ session_id: 'tmpl', workspace: { template: 'starter' } });
    expect(controller.lastResponse().status).toBe(201);
    expect((await sh('tmpl', 'cat notes.txt; stat -c %u notes.txt; readlink main-link')).logs).toEqual(['learner-work', '1000', 'src/main.py']);
    // Given back once: the next session of that id starts from the template.
    expect((await controller.client.deleteSession('tmpl')).found).toBe(true);
    await controller.client.createSession({ session_id: 'tmpl', workspace: { template: 'starter' } });
    expect(controller.lastResponse().status).toBe(201);
    expect((await sh('tmpl', 'ls notes.txt 2>&1 | grep -c "No such"')).logs).toEqual(['1']);
  });

  it('removes an expired kept workspace in the sweep', async () => {
    await controller.restart({ KEPT_WORKSPACE_TTL_SECONDS: '1' });
    await sh('tmpl', 'echo gone-soon >/workspace/notes.txt');
    const deleted = await controller.client.deleteSession('tmpl', { keep_workspace: true });
    expect(deleted.workspace_kept_until).toEqual(expect.any(String));
    const kept = async () => (await controller.leftovers()).volumes.filter((v) => v.includes('kept.'));
    expect(await kept()).toHaveLength(1);
    // Expired by now; the next sweep (every second from here on) removes it.
    await controller.restart({ KEPT_WORKSPACE_TTL_SECONDS: '1', CLEANUP_INTERVAL_SECONDS: '1' });
    for (let i = 0; i < 100 && (await kept()).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await kept()).toEqual([]);
    await controller.client.createSession({ session_id: 'tmpl' });
    expect(controller.lastResponse().status).toBe(201);
    expect((await sh('tmpl', 'ls -A /workspace | wc -l')).logs).toEqual(['0']);
    await controller.client.deleteSession('tmpl');
    expect(await controller.leftovers()).toMatchObject({ containers: [], volumes: [] });
  });

  it('seeds a session claimed from the warm pool from its template too', async () => {
    await controller.restart({ WARM_POOL_SIZE: '1' });
    // /metrics is Prometheus text for a scraper, not part of the client: read raw.
    const poolReady = async () => Number(/^runner_warm_pool_ready (\d+)$/m.exec(String((await controller.request('GET', '/metrics')).body))?.[1]);
    await vi.waitFor(async () => expect(await poolReady()).toBe(1), { timeout: 120_000, interval: 200 });
    const claims = async () => Number(/^runner_warm_pool_claims_total (\d+)$/m.exec(String((await controller.request('GET', '/metrics')).body))?.[1] ?? 0);
    const before = await claims();
    await controller.client.createSession({ session_id: 'warm', workspace: { template: 'starter' } });
    expect(controller.lastResponse().status).toBe(201);
    expect(await claims()).toBe(before + 1);
    expect((await sh('warm', 'cat src/main.py; stat -c %u src/main.py')).logs).toEqual(['print("template")', '1000']);
    await controller.client.deleteSession('warm');
    await controller.restart({ WARM_POOL_SIZE: '0' });
  });
});
