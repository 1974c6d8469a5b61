import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRoute } from '../../../../shared/routes.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

// No daemon listens here: every request that gets past validation finds Docker unreachable.
const NO_DAEMON = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

describe('docker API without a daemon', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await createTestAgent(NO_DAEMON);
    await mkdir(join(agent.workspace, 'app/sub'), { recursive: true });
    await writeFile(join(agent.workspace, 'app/Dockerfile'), 'FROM runner-busybox:latest\n');
    await writeFile(join(agent.workspace, 'Dockerfile'), 'FROM runner-busybox:latest\n');
    await writeFile(join(agent.workspace, 'notes.txt'), 'not a folder');
    await writeFile(join(agent.outside, 'Dockerfile'), 'FROM runner-busybox:latest\n');
    await symlink(agent.outside, join(agent.workspace, 'escape'));
    await symlink(join(agent.outside, 'Dockerfile'), join(agent.workspace, 'app/Linked.Dockerfile'));
  });
  afterAll(async () => agent?.close());

  const post = (url: string, payload: object) => agent.app.inject({ method: 'POST', url, payload });

  describe('refuses malformed requests before touching Docker', () => {
    it.each([
      ['an image shaped like a flag', { image: '--privileged' }],
      ['an image with a space', { image: 'runner-busybox latest' }],
      ['an empty image', { image: '' }],
      ['an image with upper-case letters', { image: 'Runner-Busybox' }],
      ['a name shaped like a flag', { image: 'runner-busybox', name: '-d' }],
      ['a name with a space', { image: 'runner-busybox', name: 'my app' }],
      ['a name starting with an underscore', { image: 'runner-busybox', name: '_app' }],
      ['a name with a slash', { image: 'runner-busybox', name: 'a/b' }],
      ['port 0', { image: 'runner-busybox', ports: ['0:80'] }],
      ['a port above 65535', { image: 'runner-busybox', ports: ['8080:65536'] }],
      ['a host port without a container port', { image: 'runner-busybox', ports: ['8080:'] }],
      ['a port range', { image: 'runner-busybox', ports: ['8000-8010:8000-8010'] }],
      ['an unknown protocol', { image: 'runner-busybox', ports: ['8080:80/icmp'] }],
      ['an invalid host address', { image: 'runner-busybox', ports: ['999.1.1.1:8080:80'] }],
      ['a port with a leading zero', { image: 'runner-busybox', ports: ['08080:80'] }],
      ['a port that is text', { image: 'runner-busybox', ports: ['http'] }],
      ['an environment name with "="', { image: 'runner-busybox', env: { 'A=B': 'c' } }],
      ['a relative workdir', { image: 'runner-busybox', workdir: 'app' }],
      ['a command that is a string', { image: 'runner-busybox', command: 'echo hi' }],
      ['a command with a NUL byte', { image: 'runner-busybox', command: ['echo', 'a\0b'] }],
      ['an empty command', { image: 'runner-busybox', command: [] }],
    ])('run: %s', async (_, body) => {
      const res = await post(AgentRoute.run, body);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('VALIDATION');
    });

    it.each([
      ['no image tag', {}],
      ['an image tag shaped like a flag', { image_tag: '-t' }],
      ['an image tag with a space', { image_tag: 'my app' }],
      ['an image tag with upper-case letters', { image_tag: 'MyApp:1' }],
      ['an image tag with a digest', { image_tag: `app@sha256:${'a'.repeat(64)}` }],
      ['a build arg with a bad name', { image_tag: 'app', build_args: { 'A B': '1' } }],
      ['no_cache that is not a boolean', { image_tag: 'app', no_cache: 'yes' }],
    ])('build: %s', async (_, body) => {
      const res = await post(AgentRoute.build, body);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('VALIDATION');
    });

    it.each([
      ['a name shaped like a flag', { container_name: '-f' }],
      ['no name', {}],
      ['a negative timeout', { container_name: 'app', timeout: -1 }],
    ])('stop: %s', async (_, body) => {
      const res = await post(AgentRoute.stop, body);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('VALIDATION');
    });

    it.each([
      ['a negative tail', '/containers/app/logs?tail=-1'],
      ['an unbounded tail', '/containers/app/logs?tail=1000000'],
      ['a tail that is text', '/containers/app/logs?tail=all'],
      ['a name shaped like a flag', '/containers/-app/logs'],
      ['a name with a space', '/containers/a%20b/logs'],
    ])('logs: %s', async (_, url) => {
      const res = await agent.app.inject({ url });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('VALIDATION');
    });
  });

  describe('keeps the build context inside the workspace', () => {
    it.each([
      ['a context above the workspace', { context_path: '/workspace/../..' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
      ['a context that is a symlink out', { context_path: 'escape' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
      ['an absolute context elsewhere', { context_path: '/etc' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
      ['a Dockerfile outside the workspace', { dockerfile_path: '/etc/passwd' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
      ['a Dockerfile above the context', { context_path: 'app/sub', dockerfile_path: '../Dockerfile' }, 400, 'INVALID_PATH'],
      ['a Dockerfile symlinked out', { context_path: 'app', dockerfile_path: 'Linked.Dockerfile' }, 403, 'PATH_OUTSIDE_WORKSPACE'],
      ['a missing context', { context_path: 'nope' }, 404, 'FILE_NOT_FOUND'],
      ['a context that is a file', { context_path: 'notes.txt' }, 409, 'NOT_A_DIRECTORY'],
      ['a missing Dockerfile', { context_path: 'app/sub' }, 404, 'FILE_NOT_FOUND'],
      ['a Dockerfile that is a folder', { dockerfile_path: 'app' }, 409, 'IS_A_DIRECTORY'],
      ['a NUL byte in the context', { context_path: 'app\0' }, 400, 'INVALID_PATH'],
    ])('refuses %s', async (_, body, status, code) => {
      for (const url of [AgentRoute.build, AgentRoute.buildStream]) {
        const res = await post(url, { image_tag: 'agtest-unit:1', ...body });
        expect(res.statusCode, url).toBe(status);
        expect(res.json().code, url).toBe(code);
      }
    });
  });

  describe('answers 503 DOCKER_UNAVAILABLE when the daemon is unreachable', () => {
    it.each([
      ['build', 'POST', AgentRoute.build, { image_tag: 'agtest-unit:1', context_path: 'app' }],
      ['streaming build', 'POST', AgentRoute.buildStream, { image_tag: 'agtest-unit:1' }],
      ['run', 'POST', AgentRoute.run, { image: 'runner-busybox:latest', ports: ['127.0.0.1:8080:80', '9000/udp'] }],
      ['stop', 'POST', AgentRoute.stop, { container_name: 'agtest-unit' }],
      ['list containers', 'GET', AgentRoute.containers, undefined],
      ['list images', 'GET', AgentRoute.images, undefined],
      ['container logs', 'GET', '/containers/agtest-unit/logs?tail=5', undefined],
    ] as const)('%s', async (_, method, url, payload) => {
      const res = await agent.app.inject({ method, url, ...(payload ? { payload } : {}) });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
    });
  });
});
