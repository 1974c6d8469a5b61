import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createDockerClient } from '../../../../core/docker/docker-client.js';
import { parseControllerConfig } from '../../../../controller/config.js';
import { DockerSessionRuntime } from '../../../../controller/runtime/docker-session-runtime.js';

// One frame of Docker's multiplexed log: stream byte, three zero bytes, big-endian payload length, payload.
const frame = (stream: 1 | 2, text: string): Buffer => {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

describe("a session container's log tail", () => {
  let dir: string;
  let engine: Server;
  afterEach(async () => {
    await new Promise((resolve) => engine.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the last lines of stdout and stderr in the order written', async () => {
    dir = await mkdtemp(join(tmpdir(), 'rt-logs-'));
    const socket = join(dir, 'engine.sock');
    const asked: string[] = [];
    engine = createServer((req, res) => {
      asked.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
      res.end(Buffer.concat([frame(1, 'agent: starting\n'), frame(2, 'dockerd: failed'), frame(2, ' to start\n'), frame(1, 'agent: giving up\n')]));
    });
    await new Promise<void>((resolve) => engine.listen(socket, resolve));
    const config = parseControllerConfig({ SOCKETS_DIR: join(dir, 'sockets') });
    const runtime = new DockerSessionRuntime(createDockerClient(`unix://${socket}`), config, pino({ level: 'silent' }));
    expect(await runtime.tailLogs('sess-x', 2)).toEqual(['dockerd: failed to start', 'agent: giving up']);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/^\/containers\/sess-x\/logs\?.*tail=2/);
  });
});
