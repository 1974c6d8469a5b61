import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDockerClient } from '../../../../core/docker/docker-client.js';

describe('the Docker client', () => {
  let engine: Server | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (engine ? engine.close(resolve) : resolve(undefined)));
    engine = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // A stand-in engine that answers every ping and records the paths asked.
  function startEngine(paths: string[]): Server {
    return createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    });
  }

  it('talks to the engine on the unix socket DOCKER_HOST names', async () => {
    dir = await mkdtemp(join(tmpdir(), 'docker-client-'));
    const socket = join(dir, 'docker.sock');
    const paths: string[] = [];
    engine = startEngine(paths);
    await new Promise<void>((resolve) => engine!.listen(socket, resolve));
    await createDockerClient(`unix://${socket}`).ping();
    expect(paths).toEqual(['/_ping']);
  });

  it('talks to the engine on the TCP address DOCKER_HOST names', async () => {
    const paths: string[] = [];
    engine = startEngine(paths);
    await new Promise<void>((resolve) => engine!.listen(0, '127.0.0.1', resolve));
    const { port } = engine.address() as AddressInfo;
    await createDockerClient(`tcp://127.0.0.1:${port}`).ping();
    expect(paths).toEqual(['/_ping']);
  });

  it('refuses a DOCKER_HOST scheme it cannot use', () => {
    expect(() => createDockerClient('ssh://user@host')).toThrow('unsupported DOCKER_HOST ssh://user@host: use unix:// or tcp://');
  });
});
