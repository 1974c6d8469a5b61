import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const TOKEN = 'containrlab-e2e-token-0123456789';
const b64 = (text: string) => Buffer.from(text).toString('base64');
const newId = () => randomUUID().replaceAll('-', '');

/** A lab like ContainrLab's lab 1: a starter with a .dockerignore and a Dockerfile serving /health on 8080. */
async function makeLabs(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'containrlab-labs-'));
  const starter = join(root, 'lab1', 'starter');
  await mkdir(join(starter, 'www'), { recursive: true });
  await writeFile(join(starter, '.dockerignore'), '__pycache__\nvenv/\n');
  await writeFile(join(starter, 'Dockerfile'), 'FROM runner-busybox:latest\nCOPY www /www\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n');
  await writeFile(join(starter, 'www', 'health'), 'ok\n');
  return root;
}

describe.sequential('ContainrLab flat API (CONTAINRLAB_COMPAT=true)', () => {
  let controller: E2EController;
  let labs: string;
  const id = newId();
  // Raw: the ContainrLab flat API is another API than the one the client speaks.
  const post = (path: string, body: unknown) => controller.request('POST', path, body);

  beforeAll(async () => {
    await buildImages();
    labs = await makeLabs();
    controller = await startE2EController({ CONTAINRLAB_COMPAT: 'true', LABS_ROOT: labs, RUNNER_API_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await controller?.destroy();
    await rm(labs, { recursive: true, force: true });
  });

  it('answers /healthz, and honours RUNNER_API_TOKEN like every route', async () => {
    expect(await controller.request('GET', '/healthz')).toEqual({ status: 200, body: { ok: true } });
    const anonymous = await fetch(`${controller.url}/healthz`);
    expect(anonymous.status).toBe(401);
  });

  it('refuses a malformed body with 422 and an unknown lab with 404, both as {detail}', async () => {
    const malformed = await post('/start', { session_id: id });
    expect(malformed.status).toBe(422);
    expect(Array.isArray(malformed.body.detail)).toBe(true);
    const notJson = await controller.request('POST', '/exec', undefined, { 'content-type': 'application/json' });
    expect(notJson.status).toBe(422);
    const unknown = await post('/start', { session_id: id, lab_slug: 'no-such-lab' });
    expect(unknown.status).toBe(404);
    expect(typeof unknown.body.detail).toBe('string');
    expect((await post('/start', { session_id: id, lab_slug: '../lab1' })).status).toBe(404);
  });

  it('starts a session seeded from the lab starter, and starting it again is fine', async () => {
    const started = await post('/start', { session_id: id, lab_slug: 'lab1' });
    expect(started.status).toBe(200);
    expect(started.body).toEqual({ session_id: id, container: expect.stringMatching(/.+/) });
    const again = await post('/start', { session_id: id, lab_slug: 'lab1' });
    expect(again).toEqual({ status: 200, body: started.body });
  });

  it('execs: output lines merged, non-zero exits are 200, unknown sessions 404', async () => {
    const cat = await post('/exec', { session_id: id, command: ['sh', '-lc', 'cat /workspace/.dockerignore; echo err >&2'] });
    expect(cat.status).toBe(200);
    expect(cat.body).toEqual({ exit_code: 0, logs: ['__pycache__', 'venv/', 'err'], elapsed_seconds: expect.any(Number) });
    const failing = await post('/exec', { session_id: id, command: ['sh', '-c', 'exit 3'], workdir: '/workspace', environment: { A: '1' } });
    expect(failing).toMatchObject({ status: 200, body: { exit_code: 3, logs: [] } });
    const env = await post('/exec', { session_id: id, command: ['sh', '-c', 'echo "$A"'], environment: { A: 'from-env' } });
    expect(env.body.logs).toEqual(['from-env']);
    expect((await post('/exec', { session_id: newId(), command: ['true'] })).status).toBe(404);
  });

  it('builds: relative context 400, missing Dockerfile 404, a generated tag and the metrics', async () => {
    expect((await post('/build', { session_id: id, context_path: 'workspace', image_tag: null })).status).toBe(400);
    const missing = await post('/build', { session_id: id, dockerfile_path: 'Nope', image_tag: null });
    expect(missing.status).toBe(404);
    expect((await post('/build', { session_id: id, context_path: '/workspace/none', image_tag: null })).status).toBe(404);
    const built = await post('/build', { session_id: id, context_path: '/workspace', dockerfile_path: 'Dockerfile', image_tag: null, build_args: {} });
    expect(built.status).toBe(200);
    expect(built.body.image_tag).toBe(`containrlab/session-${id.slice(0, 12)}:latest`);
    expect(built.body.logs.length).toBeGreaterThan(0);
    expect(built.body.metrics).toMatchObject({
      elapsed_seconds: expect.any(Number),
      image_size_mb: expect.any(Number),
      image_size_bytes: expect.any(Number),
      layer_count: expect.any(Number),
      cache_hits: expect.any(Number),
    });
    expect(built.body.metrics.image_size_bytes).toBeGreaterThan(100_000);
    expect(built.body.metrics.layers.length).toBe(built.body.metrics.layer_count);
  });

  it('answers a failed build non-2xx with error and logs both at the top and under detail', async () => {
    await post('/fs/write', { session_id: id, path: 'broken/Dockerfile', content: b64('FROM runner-busybox:latest\nRUN echo doomed && false\n') });
    const failed = await post('/build', { session_id: id, context_path: '/workspace/broken', image_tag: 'broken:1' });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(failed.body.error).toEqual(expect.any(String));
    expect(failed.body.logs.join('\n')).toContain('doomed');
    expect(failed.body.detail).toEqual({ error: failed.body.error, logs: failed.body.logs });
  });

  it('runs the lab image on 8080:8080, curl from /exec gets 200, and stops it', async () => {
    expect((await post('/run', { session_id: id, image: `containrlab/session-${id.slice(0, 12)}:latest`, ports: ['8080'] })).status).toBe(400);
    const tag = `containrlab/lab1-${id.slice(0, 12)}`;
    expect((await post('/build', { session_id: id, context_path: '/workspace', dockerfile_path: 'Dockerfile', image_tag: tag })).status).toBe(200);
    const run = await post('/run', { session_id: id, image: tag, command: [], ports: ['8080:8080'], detach: true, auto_remove: false, remove_existing: true });
    expect(run.status).toBe(200);
    expect(run.body).toEqual({ container_name: `rl_app_${id.slice(0, 12)}`, logs: [expect.any(String)], elapsed_seconds: expect.any(Number) });
    const probe = ['sh', '-lc', "curl -sS -o /dev/null -w '%{http_code}' --retry 10 --retry-connrefused --retry-delay 1 http://127.0.0.1:8080/health"];
    const curl = await post('/exec', { session_id: id, command: probe });
    expect(curl.body).toMatchObject({ exit_code: 0, logs: ['200'] });
    // Running again replaces the container of that name (remove_existing).
    expect((await post('/run', { session_id: id, image: tag, ports: ['8080:8080'] })).status).toBe(200);
    const stopped = await post('/run/stop', { session_id: id, container_name: run.body.container_name, timeout: 3, remove: true, ignore_missing: true });
    expect(stopped).toEqual({ status: 200, body: { ok: true, stopped: true, removed: true, logs: [run.body.container_name] } });
    expect(await post('/run/stop', { session_id: id, container_name: run.body.container_name })).toEqual({ status: 200, body: { ok: true, stopped: false } });
    expect((await post('/run/stop', { session_id: id, container_name: run.body.container_name, ignore_missing: false })).status).toBe(404);
  });

  it('serves the file routes with base64 content and their statuses', async () => {
    expect(await post('/fs/write', { session_id: id, path: 'src/deep/app.py', content: b64('print("hi")\n') })).toEqual({
      status: 200,
      body: { ok: true, path: '/workspace/src/deep/app.py' },
    });
    expect((await post('/fs/read', { session_id: id, path: '/workspace/src/deep/app.py' })).body).toEqual({
      path: '/workspace/src/deep/app.py',
      encoding: 'base64',
      content: b64('print("hi")\n'),
    });
    const list = await post('/fs/list', { session_id: id, path: 'src/deep' });
    expect(list.body).toEqual({
      path: '/workspace/src/deep',
      exists: true,
      is_dir: true,
      entries: [{ name: 'app.py', path: '/workspace/src/deep/app.py', is_dir: false, size: 12, modified: expect.any(Number) }],
    });
    expect((await post('/fs/list', { session_id: id, path: null })).body.entries.map((e: { name: string }) => e.name)).toContain('src');
    expect(await post('/fs/create', { session_id: id, path: 'made', kind: 'directory' })).toEqual({
      status: 200,
      body: { ok: true, path: '/workspace/made', kind: 'directory' },
    });
    expect((await post('/fs/create', { session_id: id, path: 'made/empty.txt', kind: 'file', content: null })).body).toEqual({
      ok: true,
      path: '/workspace/made/empty.txt',
      kind: 'file',
    });
    expect(await post('/fs/rename', { session_id: id, path: 'made/empty.txt', new_path: 'made/moved/full.txt' })).toEqual({
      status: 200,
      body: { ok: true, path: '/workspace/made/empty.txt', new_path: '/workspace/made/moved/full.txt' },
    });
    expect(await post('/fs/delete', { session_id: id, path: 'made' })).toEqual({ status: 200, body: { ok: true, path: '/workspace/made' } });

    expect((await post('/fs/write', { session_id: id, path: 'x.txt', content: 'not base64!' })).status).toBe(400);
    expect((await post('/fs/read', { session_id: id, path: '../etc/passwd' })).status).toBe(400);
    expect((await post('/fs/write', { session_id: id, path: '/etc/x', content: b64('x') })).status).toBe(400);
    expect((await post('/fs/delete', { session_id: id, path: '/workspace' })).status).toBe(400);
    expect((await post('/fs/rename', { session_id: id, path: 'a', new_path: 'a' })).status).toBe(400);
    for (const route of ['/fs/read', '/fs/delete', '/fs/list']) {
      const missing = await post(route, { session_id: id, path: 'no/such/thing' });
      expect(missing.status, route).toBe(404);
      expect(typeof missing.body.detail).toBe('string');
    }
    expect((await post('/fs/rename', { session_id: id, path: 'no-such', new_path: 'other' })).status).toBe(404);
    expect((await post('/fs/list', { session_id: newId(), path: null })).status).toBe(404);
  });

  it('speaks the terminal protocol: text output never split inside a character, input, resize, pong, raw text', async () => {
    const ws = new WebSocket(`${controller.url.replace('http', 'ws')}/terminal/${id}?shell=/bin/sh`, { headers: controller.authHeaders() });
    let output = '';
    let binaryFrames = 0;
    ws.on('message', (data, isBinary) => {
      if (isBinary) binaryFrames += 1;
      output += data.toString();
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const waitFor = async (pattern: RegExp) => {
      for (let i = 0; i < 300 && !pattern.test(output); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toMatch(pattern);
    };
    ws.send(JSON.stringify({ type: 'resize', cols: 111, rows: 33 }));
    ws.send(JSON.stringify({ type: 'pong' }));
    ws.send(JSON.stringify({ type: 'input', data: 'stty size | sed "s/^/size:/"\n' }));
    await waitFor(/size:33 111/);
    // Thousands of two-byte characters: chunks of the pty's output end mid-character somewhere.
    ws.send(JSON.stringify({ type: 'input', data: 'for i in $(seq 1 4000); do printf "é"; done; echo; echo done-$((40+2))\n' }));
    await waitFor(/done-42/);
    expect(output).toContain('é'.repeat(4000));
    expect(output).not.toContain('\uFFFD');
    ws.send('echo raw-$((1+2))\n');
    await waitFor(/raw-3/);
    expect(binaryFrames).toBe(0);
    ws.close();

    const unknown = new WebSocket(`${controller.url.replace('http', 'ws')}/terminal/${newId()}`, { headers: controller.authHeaders() });
    unknown.on('error', () => {});
    const status = await new Promise<number>((resolve) => {
      unknown.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      unknown.once('open', () => resolve(101));
    });
    unknown.terminate();
    expect(status).toBe(404);
  });

  it('stops idempotently; a preserved workspace comes back as the learner left it on the next /start', async () => {
    await post('/fs/write', { session_id: id, path: 'Dockerfile', content: b64('FROM runner-busybox:latest\n# edited by the learner\n') });
    expect(await post('/stop', { session_id: id, preserve_workspace: true })).toEqual({ status: 200, body: { ok: true } });
    expect((await post('/exec', { session_id: id, command: ['true'] })).status).toBe(404);
    expect((await post('/fs/list', { session_id: id })).status).toBe(404);
    expect(await post('/stop', { session_id: id, preserve_workspace: true })).toEqual({ status: 200, body: { ok: true } });

    expect((await post('/start', { session_id: id, lab_slug: 'lab1' })).status).toBe(200);
    const file = await post('/fs/read', { session_id: id, path: 'Dockerfile' });
    expect(Buffer.from(file.body.content, 'base64').toString()).toContain('edited by the learner');
    expect((await post('/exec', { session_id: id, command: ['stat', '-c', '%u', '/workspace/src/deep/app.py'] })).body.logs).toEqual(['1000']);

    expect(await post('/stop', { session_id: id })).toEqual({ status: 200, body: { ok: true } });
    expect((await post('/start', { session_id: id, lab_slug: 'lab1' })).status).toBe(200);
    const fresh = await post('/fs/read', { session_id: id, path: 'Dockerfile' });
    expect(Buffer.from(fresh.body.content, 'base64').toString()).not.toContain('edited by the learner');
    expect(await post('/stop', { session_id: id })).toEqual({ status: 200, body: { ok: true } });
    expect((await controller.leftovers()).containers).toEqual([]);
  });

  it('answers 409 while a session exists but is not running', async () => {
    const started = await post('/start', { session_id: id, lab_slug: 'lab1' });
    await controller.docker.getContainer(started.body.container).stop({ t: 1 });
    for (const [route, body] of [
      ['/exec', { session_id: id, command: ['true'] }],
      ['/fs/list', { session_id: id }],
      ['/build', { session_id: id, image_tag: null }],
    ] as const) {
      const res = await post(route, body);
      expect(res.status, route).toBe(409);
      expect(typeof res.body.detail).toBe('string');
    }
    expect(await post('/stop', { session_id: id })).toEqual({ status: 200, body: { ok: true } });
  });
});
