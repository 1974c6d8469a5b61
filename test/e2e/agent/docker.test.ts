import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentRoute } from '../../../shared/routes.js';
import type { BuildFrame, ContainerSummary } from '../../../shared/schemas/docker.js';
import { freePort } from '../../helpers/free-port.js';
import { createTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { TEST_DOCKER_ENV, testDocker } from '../../helpers/test-engine.js';

const run = promisify(execFile);
const BASE = 'runner-busybox:latest';
const PAGE = '<h1>hello from agtest</h1>\n';

let counter = 0;
const unique = (what: string): string => `agtest-${what}-${process.pid}-${Date.now().toString(36)}-${(counter += 1)}`;

const parseFrames = (body: string): BuildFrame[] =>
  body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BuildFrame);

describe.sequential('docker API on a real engine', () => {
  let agent: TestAgent;
  let docker: Docker;
  let address: string;
  const images = new Set<string>();
  const containers = new Set<string>();

  /** Writes a build context into the workspace and returns its path as clients name it. */
  async function context(files: Record<string, string>): Promise<string> {
    const name = unique('ctx');
    for (const [file, content] of Object.entries(files)) {
      await mkdir(join(agent.workspace, name, file, '..'), { recursive: true });
      await writeFile(join(agent.workspace, name, file), content);
    }
    return `/workspace/${name}`;
  }

  const imageTag = (): string => {
    const tag = `${unique('img')}:1`;
    images.add(tag);
    return tag;
  };
  const containerName = (): string => {
    const name = unique('ctr');
    containers.add(name);
    return name;
  };
  const post = (url: string, payload: object) => agent.app.inject({ method: 'POST', url, payload });
  const listed = async (): Promise<ContainerSummary[]> => (await agent.app.inject({ url: AgentRoute.containers })).json().containers;

  beforeAll(async () => {
    await run('bash', ['image/build-busybox-image.sh']);
    docker = testDocker;
    agent = await createTestAgent({ AGENT_KEEPALIVE_SECONDS: '1', ...TEST_DOCKER_ENV });
    // Most tests inject; the cancellation tests need a real connection to drop.
    address = await agent.app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterEach(async () => {
    for (const name of containers) await docker.getContainer(name).remove({ force: true, v: true }).catch(() => undefined);
    containers.clear();
    for (const tag of images) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    images.clear();
  });

  afterAll(async () => agent?.close());

  it('builds a workspace folder, serves it on a published port, shows its logs, then stops and removes it', async () => {
    const site = await context({
      Dockerfile: `FROM ${BASE}\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]\n`,
      'index.html': PAGE,
      'notes.log': 'left out by .dockerignore',
      '.dockerignore': '*.log\n',
    });
    const tag = imageTag();
    const built = await post(AgentRoute.build, { context_path: site, image_tag: tag });
    expect(built.statusCode, built.body).toBe(200);
    const build = built.json();
    expect(build).toMatchObject({ image_tag: tag, image_id: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(build.logs).toContain(`Step 1/3 : FROM ${BASE}`);
    expect(build.metrics.image_size_mb).toBeGreaterThan(0);
    expect(build.metrics.elapsed_seconds).toBeGreaterThan(0);
    expect(build.metrics.layer_count).toBeGreaterThanOrEqual(2);
    expect(build.metrics.cache_hits).toBeGreaterThanOrEqual(0);

    const rebuilt = (await post(AgentRoute.build, { context_path: site, image_tag: tag })).json();
    expect(rebuilt.image_id).toBe(build.image_id);
    expect(rebuilt.metrics.cache_hits).toBe(2);

    const images = (await agent.app.inject({ url: AgentRoute.images })).json().images;
    expect(images).toContainEqual(expect.objectContaining({ id: build.image_id, tags: [tag] }));

    const name = containerName();
    const port = await freePort();
    const started = await post(AgentRoute.run, { image: tag, name, ports: [`127.0.0.1:${port}:8080`] });
    expect(started.statusCode, started.body).toBe(200);
    expect(started.json()).toEqual({ container_name: name, container_id: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const page = await vi.waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        expect(res.status, 'the published port answers').toBe(200);
        return res.text();
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(page).toBe(PAGE);
    expect((await fetch(`http://127.0.0.1:${port}/notes.log`)).status).toBe(404);

    expect(await listed()).toContainEqual(
      expect.objectContaining({
        name,
        image: tag,
        state: 'running',
        ports: [{ container_port: 8080, protocol: 'tcp', host_ip: '127.0.0.1', host_port: port }],
      }),
    );
    const logs = (await agent.app.inject({ url: `/containers/${name}/logs?tail=10` })).json().logs as string[];
    expect(logs.some((line) => line.includes('response:200'))).toBe(true);

    const stopped = await post(AgentRoute.stop, { container_name: name, timeout: 1 });
    expect(stopped.json()).toEqual({ container_name: name, stopped: true, removed: true });
    expect((await listed()).map((c) => c.name)).not.toContain(name);
  });

  it('answers a failing RUN with 422 BUILD_FAILED and the logs at the top level', async () => {
    const ctx = await context({ Dockerfile: `FROM ${BASE}\nRUN echo before-failing && false\n` });
    const res = await post(AgentRoute.build, { context_path: ctx, image_tag: imageTag() });
    expect(res.statusCode).toBe(422);
    const body = res.json();
    expect(body.code).toBe('BUILD_FAILED');
    expect(body.message).toMatch(/returned a non-zero code: 1/);
    expect(body.logs).toContain('before-failing');
    expect(body.logs.at(-1)).toMatch(/returned a non-zero code: 1/);
  });

  it.each([
    ['an unknown instruction', `FROM ${BASE}\nFOO bar\n`, /unknown instruction: FOO/i],
    ['a base image the daemon does not have', 'FROM agtest-no-such-base:1\n', /agtest-no-such-base|registry|pull|not found/i],
  ])('answers %s with BUILD_FAILED', async (_, dockerfile, message) => {
    // Failing right after FROM leaves no intermediate image behind.
    const ctx = await context({ Dockerfile: dockerfile });
    const res = await post(AgentRoute.build, { context_path: ctx, image_tag: imageTag() });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ code: 'BUILD_FAILED', message: expect.stringMatching(message) });
    expect(res.json().logs.length).toBeGreaterThan(0);
  });

  it('passes build args and rebuilds without the cache when asked', async () => {
    const ctx = await context({ Dockerfile: `FROM ${BASE}\nARG GREETING\nRUN echo "greeting=$GREETING"\n` });
    const tag = imageTag();
    const first = await post(AgentRoute.build, { context_path: ctx, image_tag: tag, build_args: { GREETING: 'hi there' } });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().logs).toContain('greeting=hi there');
    const again = (await post(AgentRoute.build, { context_path: ctx, image_tag: imageTag(), build_args: { GREETING: 'hi there' }, no_cache: true })).json();
    expect(again.metrics.cache_hits).toBe(0);
    expect(again.logs).toContain('greeting=hi there');
  });

  it('streams a build as log frames, heartbeats while it is silent, then done', async () => {
    const ctx = await context({ 'app.Dockerfile': `FROM ${BASE}\nRUN echo starting && sleep 3 && echo finished\n` });
    const tag = imageTag();
    const res = await post(AgentRoute.buildStream, { context_path: ctx, dockerfile_path: 'app.Dockerfile', image_tag: tag, no_cache: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const frames = parseFrames(res.body);
    const lines = frames.flatMap((frame) => (frame.type === 'log' ? [frame.line] : []));
    expect(lines).toContain('starting');
    expect(lines).toContain('finished');
    expect(lines.indexOf('starting')).toBeLessThan(lines.indexOf('finished'));
    expect(frames.some((frame) => frame.type === 'heartbeat')).toBe(true);
    const done = frames.at(-1);
    expect(done).toMatchObject({ type: 'done', image_tag: tag, image_id: expect.stringMatching(/^sha256:/) });
  });

  it('ends a failing streamed build with an error frame carrying the logs', async () => {
    const ctx = await context({ Dockerfile: `FROM ${BASE}\nRUN echo about-to-fail && exit 2\n` });
    const res = await post(AgentRoute.buildStream, { context_path: ctx, image_tag: imageTag() });
    const frames = parseFrames(res.body);
    expect(frames.at(-1)).toMatchObject({ type: 'error', code: 'BUILD_FAILED', logs: expect.arrayContaining(['about-to-fail']) });
    expect(frames.filter((frame) => frame.type === 'log').map((frame) => frame.type === 'log' && frame.line)).toContain('about-to-fail');
  });

  it.each([AgentRoute.buildStream, AgentRoute.build])('cancels a build whose client went away (%s) and keeps serving', async (route) => {
    const marker = unique('cancel');
    const ctx = await context({ Dockerfile: `FROM ${BASE}\nRUN echo ${marker} && sleep 300\n` });
    // node:http rather than fetch: undici opens a spare connection on abort that holds up the server's close.
    const req = request(`${address}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ context_path: ctx, image_tag: imageTag(), no_cache: true }));
    const stepRunning = async (): Promise<boolean> => (await docker.listContainers()).some((c) => c.Command.includes(marker));
    await vi.waitFor(async () => expect(await stepRunning(), 'the build step starts').toBe(true), { timeout: 30_000, interval: 200 });
    req.destroy();

    // The step runs `sleep 300`: its container goes away well before that only if the build was cancelled.
    await vi.waitFor(async () => expect(await stepRunning(), 'the cancelled build step goes away').toBe(false), { timeout: 60_000, interval: 200 });
    expect((await agent.app.inject({ url: AgentRoute.containers })).statusCode).toBe(200);
  });

  it('runs a container in the foreground and returns its output and exit code', async () => {
    const name = containerName();
    const res = await post(AgentRoute.run, {
      image: BASE,
      name,
      command: ['sh', '-c', 'echo "$GREETING from $(pwd)"; echo oops >&2; exit 3'],
      env: { GREETING: 'hello' },
      workdir: '/tmp',
      detach: false,
      auto_remove: true,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ container_name: name, exit_code: 3, timed_out: false });
    expect(res.json().logs).toEqual(expect.arrayContaining(['hello from /tmp', 'oops']));
    expect((await listed()).map((c) => c.name)).not.toContain(name);
  });

  it('kills a foreground run that passes its timeout', async () => {
    const res = await post(AgentRoute.run, { image: BASE, name: containerName(), command: ['sh', '-c', 'echo begun; sleep 300'], detach: false, timeout_seconds: 1 });
    expect(res.json()).toMatchObject({ timed_out: true, exit_code: 137, logs: ['begun'] });
  });

  it('refuses a missing image, a taken name, a taken port and a missing program with their codes', async () => {
    const missing = await post(AgentRoute.run, { image: 'agtest-no-such-image:1' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('IMAGE_NOT_FOUND');

    const name = containerName();
    const port = await freePort();
    const first = await post(AgentRoute.run, { image: BASE, name, command: ['sleep', '300'], ports: [`127.0.0.1:${port}:80`] });
    expect(first.statusCode, first.body).toBe(200);

    const sameName = await post(AgentRoute.run, { image: BASE, name, command: ['true'] });
    expect(sameName.statusCode).toBe(409);
    expect(sameName.json().code).toBe('CONTAINER_CONFLICT');

    const otherName = containerName();
    const samePort = await post(AgentRoute.run, { image: BASE, name: otherName, command: ['sleep', '300'], ports: [`127.0.0.1:${port}:80`] });
    expect(samePort.statusCode).toBe(409);
    expect(samePort.json().code).toBe('PORT_IN_USE');

    const noProgram = await post(AgentRoute.run, { image: BASE, name: otherName, command: ['agtest-no-such-program'] });
    expect(noProgram.statusCode).toBe(422);
    expect(noProgram.json()).toMatchObject({ code: 'RUN_FAILED', message: expect.stringMatching(/agtest-no-such-program/) });
    // Containers that never started are not left behind holding their name.
    expect((await listed()).map((c) => c.name)).not.toContain(otherName);
  });

  it('answers 404 for a container that does not exist, unless told to ignore it', async () => {
    const name = unique('ghost');
    const stop = await post(AgentRoute.stop, { container_name: name });
    expect(stop.statusCode).toBe(404);
    expect(stop.json().code).toBe('CONTAINER_NOT_FOUND');
    const ignored = await post(AgentRoute.stop, { container_name: name, ignore_missing: true });
    expect(ignored.json()).toEqual({ container_name: name, stopped: false, removed: false });
    const logs = await agent.app.inject({ url: `/containers/${name}/logs` });
    expect(logs.statusCode).toBe(404);
    expect(logs.json().code).toBe('CONTAINER_NOT_FOUND');
  });

  it('stops an auto-removed container and keeps an exited one when asked not to remove it', async () => {
    const auto = containerName();
    expect((await post(AgentRoute.run, { image: BASE, name: auto, command: ['sleep', '300'], auto_remove: true })).statusCode).toBe(200);
    expect((await post(AgentRoute.stop, { container_name: auto, timeout: 0 })).json()).toEqual({ container_name: auto, stopped: true, removed: true });
    expect((await listed()).map((c) => c.name)).not.toContain(auto);

    const kept = containerName();
    await post(AgentRoute.run, { image: BASE, name: kept, command: ['sh', '-c', 'echo line1; echo line2; echo line3'], detach: false });
    expect((await post(AgentRoute.stop, { container_name: kept, remove: false })).json()).toEqual({ container_name: kept, stopped: false, removed: false });
    expect((await agent.app.inject({ url: `/containers/${kept}/logs?tail=2` })).json()).toEqual({ logs: ['line2', 'line3'] });
    expect(await listed()).toContainEqual(expect.objectContaining({ name: kept, state: 'exited' }));
  });
});
