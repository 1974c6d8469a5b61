import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../../agent/supervisor/daemon-client.js';

/* The supervisor's /_ping: true only for a 200 from a daemon that answers; false, never a throw, otherwise. */

describe('DaemonClient.ping', () => {
  let dir: string;
  let server: Server | undefined;

  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  async function listen(make: () => Server): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'ping-'));
    const socket = join(dir, 'docker.sock');
    server = make();
    await new Promise<void>((resolve) => server!.listen(socket, resolve));
    return socket;
  }

  const http = (status: number, seen: string[] = []) =>
    createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.statusCode = status;
      res.end('OK');
    });

  it('is true when the daemon answers GET /_ping with 200, many times in a row', async () => {
    const seen: string[] = [];
    const client = new DaemonClient(await listen(() => http(200, seen)));
    for (let i = 0; i < 20; i++) expect(await client.ping()).toBe(true);
    expect(seen).toEqual(Array(20).fill('GET /_ping'));
  });

  it('is false for any other status', async () => {
    const client = new DaemonClient(await listen(() => http(500)));
    expect(await client.ping()).toBe(false);
  });

  it('is false when nothing listens', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ping-'));
    expect(await new DaemonClient(join(dir, 'missing.sock')).ping()).toBe(false);
  });

  it('is false when the daemon hangs up without an answer', async () => {
    const client = new DaemonClient(await listen(() => createNetServer((socket) => socket.destroy())));
    expect(await client.ping()).toBe(false);
  });

  it('is false when the daemon answers something that is not HTTP', async () => {
    const client = new DaemonClient(await listen(() => createNetServer((socket) => socket.resume().end('x'.repeat(4096)))));
    expect(await client.ping()).toBe(false);
  });
});
