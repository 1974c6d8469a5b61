import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const SESSION = 'sessapi';
const API = `/sessions/${SESSION}`;
const TOKEN = 'e2e-session-api-token-0123456789';
const WAIT = { timeout: 20_000, interval: 100 };

/** A WebSocket client that keeps everything received, opened like a backend would (bearer token in a header). */
class WsClient {
  text = '';
  readonly frames: unknown[] = [];
  readonly closed: Promise<void>;

  private constructor(
    readonly ws: WebSocket,
    /** The 101 response: its headers are the upstream's. */
    readonly upgrade: IncomingMessage,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const chunk = data.toString('utf8');
      this.text += chunk;
      if (!isBinary) this.frames.push(JSON.parse(chunk));
    });
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
  }

  static open(url: string, headers: Record<string, string>): Promise<WsClient> {
    const ws = new WebSocket(url, { headers });
    return new Promise((resolve, reject) => {
      ws.once('upgrade', (upgrade) => ws.once('open', () => resolve(new WsClient(ws, upgrade))));
      ws.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
      ws.once('error', reject);
    });
  }

  /** Waits until the output received after `from` matches; returns the match. */
  async waitFor(pattern: RegExp, from = 0): Promise<RegExpMatchArray> {
    return vi.waitFor(() => {
      const match = this.text.slice(from).match(pattern);
      if (!match) throw new Error(`no ${pattern} in ${JSON.stringify(this.text.slice(from))}`);
      return match;
    }, WAIT);
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

/** The status a WebSocket upgrade is refused with (0 when it was accepted). */
function refusedUpgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? -1);
      ws.terminate();
    });
    ws.once('open', () => {
      resolve(0);
      ws.close();
    });
    ws.once('error', reject);
  });
}

describe.sequential('the session API through the controller on real Docker', () => {
  let ctl: E2EController;
  const wsUrl = (path: string) => `${ctl.url.replace('http:', 'ws:')}${path}`;
  const exec = async (command: string[]) => {
    const res = await ctl.request('POST', `${API}/exec`, { command });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { exit_code: number; stdout: string; stderr: string; logs: string[] };
  };

  beforeAll(async () => {
    await buildImages();
    ctl = await startE2EController({ RUNNER_API_TOKEN: TOKEN });
    const created = await ctl.request('POST', '/sessions', { session_id: SESSION });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  });

  afterAll(async () => {
    if (!ctl) return;
    await ctl.request('DELETE', API).catch(() => {});
    await ctl.destroy();
  });

  describe.sequential('files', () => {
    it('writes JSON and reads it back as JSON, owned by the learner', async () => {
      const created = await ctl.request('PUT', `${API}/files/workspace/notes/a.txt`, { content: 'first' });
      expect(created).toEqual({ status: 201, body: { path: '/workspace/notes/a.txt', size: 5 } });
      const replaced = await ctl.request('PUT', `${API}/files/workspace/notes/a.txt`, { content: 'héllo' });
      expect(replaced).toEqual({ status: 200, body: { path: '/workspace/notes/a.txt', size: 6 } });

      const read = await ctl.request('GET', `${API}/files/workspace/notes/a.txt`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ path: '/workspace/notes/a.txt', encoding: 'utf-8', content: 'héllo', size: 6 });
      expect((await exec(['stat', '-c', '%u:%g', '/workspace/notes/a.txt'])).stdout.trim()).toBe('1000:1000');
    });

    it('writes raw bytes and reads them back raw, and as base64 in JSON', async () => {
      const bytes = Buffer.from([0xff, 0x00, 0x80, 0x41, 0x0a]);
      const put = await fetch(`${ctl.url}${API}/files/workspace/bin/data.bin`, {
        method: 'PUT',
        headers: { ...ctl.authHeaders(), 'content-type': 'application/octet-stream' },
        body: bytes,
      });
      expect(put.status).toBe(201);
      expect(await put.json()).toEqual({ path: '/workspace/bin/data.bin', size: 5 });

      const raw = await fetch(`${ctl.url}${API}/files/workspace/bin/data.bin`, {
        headers: { ...ctl.authHeaders(), accept: 'application/octet-stream' },
      });
      expect(raw.status).toBe(200);
      expect(raw.headers.get('content-type')).toBe('application/octet-stream');
      expect(Buffer.from(await raw.arrayBuffer())).toEqual(bytes);

      const json = await ctl.request('GET', `${API}/files/workspace/bin/data.bin`);
      expect(json.body).toMatchObject({ encoding: 'base64', content: bytes.toString('base64'), size: 5 });
    });

    it('lists a folder, makes folders, moves a file and deletes it', async () => {
      const mkdir = await ctl.request('POST', `${API}/files/mkdir`, { path: '/workspace/notes/archive/2024' });
      expect(mkdir).toEqual({ status: 201, body: { path: '/workspace/notes/archive/2024' } });
      expect((await ctl.request('POST', `${API}/files/mkdir`, { path: 'notes/archive/2024' })).status).toBe(200);

      const listing = await ctl.request('GET', `${API}/files?path=/workspace/notes`);
      expect(listing.status).toBe(200);
      expect(listing.body).toMatchObject({ path: '/workspace/notes', truncated: false });
      expect(listing.body.entries.map((e: { name: string; type: string }) => [e.name, e.type])).toEqual([
        ['a.txt', 'file'],
        ['archive', 'directory'],
      ]);

      const move = await ctl.request('POST', `${API}/files/move`, { from: '/workspace/notes/a.txt', to: '/workspace/notes/archive/2024/b.txt' });
      expect(move).toEqual({ status: 200, body: { from: '/workspace/notes/a.txt', to: '/workspace/notes/archive/2024/b.txt' } });
      expect((await ctl.request('GET', `${API}/files/workspace/notes/a.txt`)).body).toMatchObject({ code: 'FILE_NOT_FOUND' });
      expect((await ctl.request('GET', `${API}/files/workspace/notes/archive/2024/b.txt`)).body.content).toBe('héllo');
      const deep = await ctl.request('GET', `${API}/files?path=/workspace/notes&depth=3`);
      expect(deep.body.entries.map((e: { path: string }) => e.path)).toEqual([
        '/workspace/notes/archive',
        '/workspace/notes/archive/2024',
        '/workspace/notes/archive/2024/b.txt',
      ]);

      const deleted = await ctl.request('DELETE', `${API}/files/workspace/notes/archive/2024/b.txt`);
      expect(deleted).toEqual({ status: 200, body: { path: '/workspace/notes/archive/2024/b.txt' } });
      const gone = await ctl.request('GET', `${API}/files/workspace/notes/archive/2024/b.txt`);
      expect(gone.status).toBe(404);
      expect(gone.body).toMatchObject({ code: 'FILE_NOT_FOUND' });
      expect((await exec(['ls', '-A', '/workspace/notes/archive/2024'])).stdout).toBe('');
    });

    it("passes the agent's error body through for a path outside the workspace", async () => {
      const outside = await ctl.request('POST', `${API}/files/move`, { from: '/workspace/bin/data.bin', to: '/etc/passwd' });
      expect(outside.status).toBe(403);
      expect(outside.body).toMatchObject({ code: 'PATH_OUTSIDE_WORKSPACE' });
    });
  });

  describe.sequential('build, run, reach, logs, stop', () => {
    it('builds a Dockerfile FROM runner-busybox written through the files API, with metrics', async () => {
      const dockerfile = [
        'FROM runner-busybox:latest',
        'COPY www /www',
        'CMD ["sh", "-c", "echo web starting; exec httpd -f -p 8080 -h /www"]',
      ].join('\n');
      expect((await ctl.request('PUT', `${API}/files/workspace/web/Dockerfile`, { content: dockerfile })).status).toBe(201);
      expect((await ctl.request('PUT', `${API}/files/workspace/web/www/index.html`, { content: 'hello from the lab\n' })).status).toBe(201);

      const build = await ctl.request('POST', `${API}/build`, { context_path: '/workspace/web', dockerfile_path: 'Dockerfile', image_tag: 'lab-web:1' });
      expect(build.status, JSON.stringify(build.body)).toBe(200);
      expect(build.body).toMatchObject({ image_tag: 'lab-web:1', image_id: expect.stringMatching(/^sha256:/) });
      expect(build.body.logs.join('\n')).toMatch(/Successfully tagged lab-web:1/);
      const { metrics } = build.body;
      expect(metrics.image_size_mb).toBeGreaterThan(0);
      expect(metrics.elapsed_seconds).toBeGreaterThan(0);
      expect(metrics.layer_count).toBeGreaterThanOrEqual(2);
      expect(Number.isInteger(metrics.cache_hits)).toBe(true);
      const images = await ctl.request('GET', `${API}/images`);
      expect(images.body.images.flatMap((i: { tags: string[] }) => i.tags)).toContain('lab-web:1');
    });

    it('runs it with 8080:8080, reachable by curl inside the session and through the ports route', async () => {
      const run = await ctl.request('POST', `${API}/run`, { image: 'lab-web:1', name: 'web', ports: ['8080:8080'] });
      expect(run.status, JSON.stringify(run.body)).toBe(200);
      expect(run.body.container_name).toBe('web');

      // The judge's way: curl from an exec inside the session, retried while httpd starts.
      const curl = await exec(['curl', '-sS', '--retry', '20', '--retry-connrefused', '--retry-delay', '1', 'http://127.0.0.1:8080/']);
      expect(curl).toMatchObject({ exit_code: 0, stdout: 'hello from the lab\n' });

      const page = await fetch(`${ctl.url}${API}/ports/8080/`, { headers: ctl.authHeaders() });
      expect(page.status).toBe(200);
      expect(await page.text()).toBe('hello from the lab\n');
      const file = await fetch(`${ctl.url}${API}/ports/8080/index.html`, { headers: ctl.authHeaders() });
      expect(await file.text()).toBe('hello from the lab\n');

      const containers = await ctl.request('GET', `${API}/containers`);
      expect(containers.body.containers).toContainEqual(
        expect.objectContaining({
          name: 'web',
          image: 'lab-web:1',
          state: 'running',
          ports: expect.arrayContaining([expect.objectContaining({ container_port: 8080, host_port: 8080 })]),
        }),
      );
    });

    it('reads the running container logs', async () => {
      const logs = await ctl.request('GET', `${API}/containers/web/logs?tail=10`);
      expect(logs.status).toBe(200);
      expect(logs.body.logs).toContain('web starting');
    });

    it('stops it: gone from /containers, and its port answers PORT_UNAVAILABLE', async () => {
      const stop = await ctl.request('POST', `${API}/stop`, { container_name: 'web', timeout: 1 });
      expect(stop).toEqual({ status: 200, body: { container_name: 'web', stopped: true, removed: true } });
      const containers = await ctl.request('GET', `${API}/containers`);
      expect(containers.body.containers.map((c: { name: string }) => c.name)).not.toContain('web');
      const port = await ctl.request('GET', `${API}/ports/8080/`);
      expect(port.status).toBe(502);
      expect(port.body).toMatchObject({ code: 'PORT_UNAVAILABLE', port: 8080 });
      expect((await exec(['curl', '-sS', 'http://127.0.0.1:8080/'])).exit_code).not.toBe(0);
    });

    it('answers a failing build with 422 BUILD_FAILED and its logs at the top level', async () => {
      const dockerfile = ['FROM runner-busybox:latest', 'RUN echo about-to-fail && exit 3'].join('\n');
      expect((await ctl.request('PUT', `${API}/files/workspace/broken/Dockerfile`, { content: dockerfile })).status).toBe(201);
      const build = await ctl.request('POST', `${API}/build`, { context_path: '/workspace/broken', image_tag: 'lab-broken:1' });
      expect(build.status).toBe(422);
      expect(build.body).toMatchObject({ code: 'BUILD_FAILED', message: expect.any(String), logs: expect.any(Array) });
      expect(build.body.logs.join('\n')).toContain('about-to-fail');
    });

    it('streams exec output as it happens: the first line arrives while the command still waits', async () => {
      // The command prints, then waits for a file the test writes only after it has read that first line.
      const script = 'echo one; while [ ! -e /workspace/go ]; do sleep 0.1; done; echo two';
      const res = await fetch(`${ctl.url}${API}/exec/stream`, {
        method: 'POST',
        headers: { ...ctl.authHeaders(), 'content-type': 'application/json' },
        body: JSON.stringify({ command: ['sh', '-c', script], timeout_seconds: 60 }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-ndjson');
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const frames: { type: string; data?: string; exit_code?: number }[] = [];
      let pending = '';
      const readUntil = async (done: (frame: (typeof frames)[number]) => boolean) => {
        for (;;) {
          const { value, done: ended } = await reader.read();
          if (ended) throw new Error(`stream ended early: ${JSON.stringify(frames)}`);
          pending += value;
          const lines = pending.split('\n');
          pending = lines.pop()!;
          for (const line of lines) frames.push(JSON.parse(line));
          if (frames.some(done)) return;
        }
      };
      await readUntil((f) => f.type === 'stdout' && f.data === 'one\n');
      expect(frames.some((f) => f.type === 'exit')).toBe(false);

      expect((await ctl.request('PUT', `${API}/files/workspace/go`, { content: '' })).status).toBe(201);
      await readUntil((f) => f.type === 'exit');
      const output = frames.filter((f) => f.type === 'stdout').map((f) => f.data).join('');
      expect(output).toBe('one\ntwo\n');
      expect(frames.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
    });
  });

  describe.sequential('terminal', () => {
    const TERMINAL = 'term1';
    const terminalUrl = (query: string) => wsUrl(`${API}/terminal/ws?${query}`);

    it('types, resizes and reattaches with the scrollback replayed, then live output', async () => {
      const first = await WsClient.open(terminalUrl(`id=${TERMINAL}&cols=80&rows=24`), ctl.authHeaders());
      expect(first.upgrade.headers['x-terminal-id']).toBe(TERMINAL);

      first.ws.send('echo hi\r');
      await first.waitFor(/^hi\r?$/m);

      first.ws.send('echo "U=$(id -u) G=$(id -G)"\r');
      const ids = await first.waitFor(/U=(\d+) G=([\d ]+)\r/);
      expect([ids[1], ids[2]]).toEqual(['1000', '1000']);

      const resized = await ctl.request('POST', `${API}/terminals/${TERMINAL}/resize`, { cols: 120, rows: 40 });
      expect(resized.status).toBe(200);
      expect(resized.body).toMatchObject({ id: TERMINAL, cols: 120, rows: 40, attached: 1 });
      first.ws.send('echo "S=$(stty size)"\r');
      expect((await first.waitFor(/S=(\d+ \d+)\r/))[1]).toBe('40 120');

      first.ws.send('echo "before-$((6*7))"\r');
      await first.waitFor(/before-42/);
      await first.close();

      const second = await WsClient.open(terminalUrl(`id=${TERMINAL}`), ctl.authHeaders());
      try {
        // Nothing typed yet: what arrives is the replayed scrollback.
        await second.waitFor(/before-42/);
        expect(second.text).toMatch(/^hi\r?$/m);
        const replayed = second.text.length;
        second.ws.send('echo "after-$((2*3))"\r');
        await second.waitFor(/after-6/, replayed);
        expect(second.text.slice(replayed)).not.toContain('before-42');
      } finally {
        await second.close();
      }
      expect((await ctl.request('DELETE', `${API}/terminals/${TERMINAL}`)).status).toBe(204);
    });
  });

  describe.sequential('watch', () => {
    it('sees a file written through the files API', async () => {
      const watch = await WsClient.open(wsUrl(`${API}/watch/ws`), ctl.authHeaders());
      try {
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'ready' }), WAIT);
        expect((await ctl.request('PUT', `${API}/files/workspace/watched/hello.txt`, { content: 'hi' })).status).toBe(201);
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'created', path: 'watched/hello.txt', kind: 'file' }), WAIT);
      } finally {
        await watch.close();
      }
    });
  });

  describe.sequential('token', () => {
    it('refuses requests and WebSockets without the token, and leaves /health open', async () => {
      for (const path of ['/sessions', API, `${API}/files`, `${API}/ports/8080/`]) {
        const res = await fetch(`${ctl.url}${path}`);
        expect(res.status, path).toBe(401);
        expect(await res.json()).toMatchObject({ code: 'UNAUTHORIZED' });
      }
      const wrong = await fetch(`${ctl.url}/sessions`, { headers: { authorization: `Bearer ${TOKEN}x` } });
      expect(wrong.status).toBe(401);
      const exec = await fetch(`${ctl.url}${API}/exec`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ command: ['touch', '/workspace/pwned'] }),
      });
      expect(exec.status).toBe(401);
      expect((await ctl.request('GET', `${API}/files/workspace/pwned`)).status).toBe(404);

      expect(await refusedUpgradeStatus(wsUrl(`${API}/terminal/ws`))).toBe(401);
      expect(await refusedUpgradeStatus(wsUrl(`${API}/watch/ws`), { authorization: 'Bearer wrong' })).toBe(401);
      expect(await refusedUpgradeStatus(wsUrl(`${API}/watch/ws`), ctl.authHeaders())).toBe(0);

      const health = await fetch(`${ctl.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'healthy', active_sessions: 1, docker_available: true });
      expect((await ctl.request('GET', '/sessions')).status).toBe(200);
    });

    it('answers a WebSocket upgrade without the token with 401 and closes its connection', async () => {
      const { port } = new URL(ctl.url);
      const socket = connect(Number(port), '127.0.0.1');
      let answer = '';
      let ended = false;
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.on('end', () => (ended = true));
      socket.on('close', () => (ended = true));
      try {
        socket.write(
          [
            `GET ${API}/terminal/ws HTTP/1.1`,
            'Host: controller',
            'Connection: Upgrade',
            'Upgrade: websocket',
            'Sec-WebSocket-Version: 13',
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
            '',
            '',
          ].join('\r\n'),
        );
        await vi.waitFor(() => expect(answer).toMatch(/^HTTP\/1\.1 401 /), WAIT);
        // Otherwise every refused attempt holds a socket, and the controller can no longer shut down.
        await vi.waitFor(() => expect(ended, 'the controller keeps the refused connection open').toBe(true), { timeout: 10_000, interval: 100 });
      } finally {
        socket.destroy();
      }
    });
  });
});
