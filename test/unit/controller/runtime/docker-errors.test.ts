import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createDockerClient } from '../../../../core/docker/docker-client.js';
import { parseControllerConfig } from '../../../../controller/config.js';
import { DockerSessionRuntime } from '../../../../controller/runtime/docker-session-runtime.js';

describe("the Docker runtime's errors", () => {
  let dir: string;
  let engine: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (engine ? engine.close(resolve) : resolve(undefined)));
    engine = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function runtimeOn(socket: string): Promise<DockerSessionRuntime> {
    const config = parseControllerConfig({ SOCKETS_DIR: join(dir, 'sockets') });
    return new DockerSessionRuntime(createDockerClient(`unix://${socket}`), config, pino({ level: 'silent' }));
  }

  it('answers DOCKER_UNAVAILABLE, saying what it could not do, when the engine socket is missing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rt-errors-'));
    const runtime = await runtimeOn(join(dir, 'missing.sock'));
    await expect(runtime.listSessions()).rejects.toMatchObject({
      code: 'DOCKER_UNAVAILABLE',
      message: 'the Docker daemon is not reachable (ENOENT): could not list session containers',
    });
  });

  it("answers DOCKER_ERROR with the engine's own words when it fails", async () => {
    dir = await mkdtemp(join(tmpdir(), 'rt-errors-'));
    const socket = join(dir, 'engine.sock');
    engine = createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'the engine broke' }));
    });
    await new Promise<void>((resolve) => engine!.listen(socket, resolve));
    const runtime = await runtimeOn(socket);
    await expect(runtime.listSessions()).rejects.toMatchObject({
      code: 'DOCKER_ERROR',
      message: 'could not list session containers: the engine broke',
    });
  });
});
