import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { ExecFrame, SessionClient, WatchFrame } from '../../../client/src/index.js';
import { attachTerminal, type NodeTerminal } from '../../../client/src/node.js';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';
import { runnerError } from '../../helpers/runner-error.js';

const SESSION = 'sessapi';
const API = `/sessions/${SESSION}`;
const TOKEN = 'e2e-session-api-token-0123456789';
const WAIT = { timeout: 20_000, interval: 100 };

/** A terminal attached through the client, keeping everything it printed. */
class Terminal {
  text = '';

  private constructor(readonly terminal: NodeTerminal) {
    terminal.stream.on('data', (chunk: Buffer) => (this.text += chunk.toString('utf8')));
  }

  static async attach(lab: SessionClient, authorization: Record<string, string>, options: { id: string; cols?: number; rows?: number }): Promise<Terminal> {
    return new Terminal(await attachTerminal(lab, authorization, options));
  }

  type(keys: string): void {
    this.terminal.stream.write(keys);
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
    this.terminal.stream.end();
    await this.terminal.closed;
  }
}

/** The watch WebSocket, opened like a backend would (bearer token in a header): raw, as the client watches by SSE. */
class WsWatch {
  readonly frames: unknown[] = [];
  readonly closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.frames.push(JSON.parse(data.toString('utf8'))));
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
  }

  static open(url: string, headers: Record<string, string>): Promise<WsWatch> {
    const ws = new WebSocket(url, { headers });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new WsWatch(ws)));
      ws.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
      ws.once('error', reject);
    });
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
  let lab: SessionClient;
  const wsUrl = (path: string) => `${ctl.url.replace('http:', 'ws:')}${path}`;
  const exec = (command: string[]) => lab.exec({ command });

  beforeAll(async () => {
    await buildImages();
    ctl = await startE2EController({ RUNNER_API_TOKEN: TOKEN });
    expect(await ctl.client.createSession({ session_id: SESSION })).toMatchObject({ session_id: SESSION, status: 'running' });
    expect(ctl.lastResponse().status).toBe(201);
    lab = ctl.client.session(SESSION);
  });

  afterAll(async () => {
    if (!ctl) return;
    await ctl.client.deleteSession(SESSION).catch(() => {});
    await ctl.destroy();
  });

  describe.sequential('files', () => {
    it('writes JSON and reads it back as JSON, owned by the learner', async () => {
      expect(await lab.writeFile('/workspace/notes/a.txt', 'first')).toEqual({ path: '/workspace/notes/a.txt', size: 5 });
      expect(ctl.lastResponse().status).toBe(201);
      expect(await lab.writeFile('notes/a.txt', 'héllo')).toEqual({ path: '/workspace/notes/a.txt', size: 6 });
      expect(ctl.lastResponse().status).toBe(200);

      expect(await lab.readFile('/workspace/notes/a.txt')).toMatchObject({ path: '/workspace/notes/a.txt', encoding: 'utf-8', content: 'héllo', size: 6 });
      expect((await exec(['stat', '-c', '%u:%g', '/workspace/notes/a.txt'])).stdout.trim()).toBe('1000:1000');
    });

    it('writes raw bytes and reads them back raw, and as base64 in JSON', async () => {
      const bytes = Buffer.from([0xff, 0x00, 0x80, 0x41, 0x0a]);
      expect(await lab.writeFile('/workspace/bin/data.bin', new Uint8Array(bytes))).toEqual({ path: '/workspace/bin/data.bin', size: 5 });
      expect(ctl.lastResponse().status).toBe(201);

      expect(Buffer.from(await lab.readBytes('/workspace/bin/data.bin'))).toEqual(bytes);
      expect(ctl.lastResponse().headers.get('content-type')).toBe('application/octet-stream');

      expect(await lab.readFile('/workspace/bin/data.bin')).toMatchObject({ encoding: 'base64', content: bytes.toString('base64'), size: 5 });
    });

    it('lists a folder, makes folders, moves a file and deletes it', async () => {
      expect(await lab.mkdir('/workspace/notes/archive/2024')).toEqual({ path: '/workspace/notes/archive/2024' });
      expect(ctl.lastResponse().status).toBe(201);
      await lab.mkdir('notes/archive/2024');
      expect(ctl.lastResponse().status).toBe(200);

      const listing = await lab.listFiles('/workspace/notes');
      expect(listing).toMatchObject({ path: '/workspace/notes', truncated: false });
      expect(listing.entries.map((e) => [e.name, e.type])).toEqual([
        ['a.txt', 'file'],
        ['archive', 'directory'],
      ]);

      const move = await lab.move({ from: '/workspace/notes/a.txt', to: '/workspace/notes/archive/2024/b.txt' });
      expect(move).toEqual({ from: '/workspace/notes/a.txt', to: '/workspace/notes/archive/2024/b.txt' });
      expect(ctl.lastResponse().status).toBe(200);
      expect(await runnerError(lab.readFile('/workspace/notes/a.txt'))).toMatchObject({ code: 'FILE_NOT_FOUND' });
      expect((await lab.readFile('/workspace/notes/archive/2024/b.txt')).content).toBe('héllo');
      const deep = await lab.listFiles('/workspace/notes', 3);
      expect(deep.entries.map((e) => e.path)).toEqual([
        '/workspace/notes/archive',
        '/workspace/notes/archive/2024',
        '/workspace/notes/archive/2024/b.txt',
      ]);

      expect(await lab.deleteFile('/workspace/notes/archive/2024/b.txt')).toEqual({ path: '/workspace/notes/archive/2024/b.txt' });
      expect(ctl.lastResponse().status).toBe(200);
      expect(await runnerError(lab.readFile('/workspace/notes/archive/2024/b.txt'))).toMatchObject({ status: 404, code: 'FILE_NOT_FOUND' });
      expect((await exec(['ls', '-A', '/workspace/notes/archive/2024'])).stdout).toBe('');
    });

    it("passes the agent's error body through for a path outside the workspace", async () => {
      const outside = await runnerError(lab.move({ from: '/workspace/bin/data.bin', to: '/etc/passwd' }));
      expect(outside).toMatchObject({ status: 403, code: 'PATH_OUTSIDE_WORKSPACE' });
    });
  });

  describe.sequential('build, run, reach, logs, stop', () => {
    it('builds a Dockerfile FROM runner-busybox written through the files API, with metrics', async () => {
      const dockerfile = [
        'FROM runner-busybox:latest',
        'COPY www /www',
        'CMD ["sh", "-c", "echo web starting; exec httpd -f -p 8080 -h /www"]',
      ].join('\n');
      await lab.writeFile('/workspace/web/Dockerfile', dockerfile);
      expect(ctl.lastResponse().status).toBe(201);
      await lab.writeFile('/workspace/web/www/index.html', 'hello from the lab\n');
      expect(ctl.lastResponse().status).toBe(201);

      const build = await lab.build({ context_path: '/workspace/web', dockerfile_path: 'Dockerfile', image_tag: 'lab-web:1' });
      expect(build).toMatchObject({ image_tag: 'lab-web:1', image_id: expect.stringMatching(/^sha256:/) });
      expect(build.logs.join('\n')).toMatch(/Successfully tagged lab-web:1/);
      const { metrics } = build;
      expect(metrics.image_size_mb).toBeGreaterThan(0);
      expect(metrics.elapsed_seconds).toBeGreaterThan(0);
      expect(metrics.layer_count).toBeGreaterThanOrEqual(2);
      expect(Number.isInteger(metrics.cache_hits)).toBe(true);
      expect((await lab.images()).images.flatMap((i) => i.tags)).toContain('lab-web:1');
    });

    it('runs it with 8080:8080, reachable by curl inside the session and through the ports route', async () => {
      expect((await lab.run({ image: 'lab-web:1', name: 'web', ports: ['8080:8080'] })).container_name).toBe('web');

      // The judge's way: curl from an exec inside the session, retried while httpd starts.
      const curl = await exec(['curl', '-sS', '--retry', '20', '--retry-connrefused', '--retry-delay', '1', 'http://127.0.0.1:8080/']);
      expect(curl).toMatchObject({ exit_code: 0, stdout: 'hello from the lab\n' });

      // The ports route proxies the learner's own app (no JSON of the API): read as a browser would, raw.
      const page = await fetch(`${ctl.url}${API}/ports/8080/`, { headers: ctl.authHeaders() });
      expect(page.status).toBe(200);
      expect(await page.text()).toBe('hello from the lab\n');
      const file = await fetch(`${ctl.url}${API}/ports/8080/index.html`, { headers: ctl.authHeaders() });
      expect(await file.text()).toBe('hello from the lab\n');

      expect((await lab.containers()).containers).toContainEqual(
        expect.objectContaining({
          name: 'web',
          image: 'lab-web:1',
          state: 'running',
          ports: expect.arrayContaining([expect.objectContaining({ container_port: 8080, host_port: 8080 })]),
        }),
      );
    });

    it('reads the running container logs', async () => {
      expect((await lab.containerLogs('web', 10)).logs).toContain('web starting');
    });

    it('stops it: gone from /containers, and its port answers PORT_UNAVAILABLE', async () => {
      expect(await lab.stop({ container_name: 'web', timeout: 1 })).toEqual({ container_name: 'web', stopped: true, removed: true });
      expect(ctl.lastResponse().status).toBe(200);
      expect((await lab.containers()).containers.map((c) => c.name)).not.toContain('web');
      const port = await ctl.request('GET', `${API}/ports/8080/`); // the ports route, raw as above
      expect(port.status).toBe(502);
      expect(port.body).toMatchObject({ code: 'PORT_UNAVAILABLE', port: 8080 });
      expect((await exec(['curl', '-sS', 'http://127.0.0.1:8080/'])).exit_code).not.toBe(0);
    });

    it('answers a failing build with 422 BUILD_FAILED and its logs at the top level', async () => {
      const dockerfile = ['FROM runner-busybox:latest', 'RUN echo about-to-fail && exit 3'].join('\n');
      await lab.writeFile('/workspace/broken/Dockerfile', dockerfile);
      expect(ctl.lastResponse().status).toBe(201);
      const build = await runnerError(lab.build({ context_path: '/workspace/broken', image_tag: 'lab-broken:1' }));
      expect(build).toMatchObject({ status: 422, code: 'BUILD_FAILED', body: { code: 'BUILD_FAILED', message: expect.any(String), logs: expect.any(Array) } });
      expect((build.body.logs as string[]).join('\n')).toContain('about-to-fail');
    });

    it('streams exec output as it happens: the first line arrives while the command still waits', async () => {
      // The command prints, then waits for a file the test writes only after it has read that first line.
      const script = 'echo one; while [ ! -e /workspace/go ]; do sleep 0.1; done; echo two';
      const stream = lab.execStream({ command: ['sh', '-c', script], timeout_seconds: 60 });
      const frames: ExecFrame[] = [];
      // Frame by frame with next(): leaving a for-await loop would end the request.
      const readUntil = async (done: (frame: ExecFrame) => boolean) => {
        for (;;) {
          const next = await stream.next();
          if (next.done) throw new Error(`stream ended early: ${JSON.stringify(frames)}`);
          frames.push(next.value);
          if (done(next.value)) return;
        }
      };
      await readUntil((f) => f.type === 'stdout' && f.data === 'one\n');
      expect(ctl.lastResponse()).toMatchObject({ status: 200 });
      expect(ctl.lastResponse().headers.get('content-type')).toBe('application/x-ndjson');
      expect(frames.some((f) => f.type === 'exit')).toBe(false);

      await lab.writeFile('/workspace/go', '');
      expect(ctl.lastResponse().status).toBe(201);
      await readUntil((f) => f.type === 'exit');
      const output = frames.map((f) => (f.type === 'stdout' ? f.data : '')).join('');
      expect(output).toBe('one\ntwo\n');
      expect(frames.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
    });
  });

  describe.sequential('terminal', () => {
    const TERMINAL = 'term1';

    it('types, resizes and reattaches with the scrollback replayed, then live output', async () => {
      const first = await Terminal.attach(lab, ctl.authHeaders(), { id: TERMINAL, cols: 80, rows: 24 });
      // The id the client read from the upgrade's X-Terminal-Id, and the agent's own list.
      expect(first.terminal.id).toBe(TERMINAL);
      expect((await lab.terminals()).terminals).toContainEqual(expect.objectContaining({ id: TERMINAL, attached: 1 }));

      first.type('echo hi\r');
      await first.waitFor(/^hi\r?$/m);

      first.type('echo "U=$(id -u) G=$(id -G)"\r');
      const ids = await first.waitFor(/U=(\d+) G=([\d ]+)\r/);
      expect([ids[1], ids[2]]).toEqual(['1000', '1000']);

      expect(await lab.resizeTerminal(TERMINAL, 120, 40)).toMatchObject({ id: TERMINAL, cols: 120, rows: 40, attached: 1 });
      expect(ctl.lastResponse().status).toBe(200);
      first.type('echo "S=$(stty size)"\r');
      expect((await first.waitFor(/S=(\d+ \d+)\r/))[1]).toBe('40 120');

      first.type('echo "before-$((6*7))"\r');
      await first.waitFor(/before-42/);
      await first.close();

      const second = await Terminal.attach(lab, ctl.authHeaders(), { id: TERMINAL });
      try {
        expect(second.terminal.id).toBe(TERMINAL);
        // Nothing typed yet: what arrives is the replayed scrollback.
        await second.waitFor(/before-42/);
        expect(second.text).toMatch(/^hi\r?$/m);
        const replayed = second.text.length;
        second.type('echo "after-$((2*3))"\r');
        await second.waitFor(/after-6/, replayed);
        expect(second.text.slice(replayed)).not.toContain('before-42');
      } finally {
        await second.close();
      }
      await lab.killTerminal(TERMINAL);
      expect(ctl.lastResponse().status).toBe(204);
    });
  });

  describe.sequential('watch', () => {
    it('sees a file written through the files API, on the WebSocket and through the client (SSE)', async () => {
      // The folder first: this case is about the file's event, not about a folder that appears with a file in it.
      await lab.mkdir('/workspace/watched');
      const watch = await WsWatch.open(wsUrl(`${API}/watch/ws`), ctl.authHeaders());
      const abort = new AbortController();
      const seen: WatchFrame[] = [];
      const sse = (async () => {
        for await (const frame of lab.watch({ signal: abort.signal })) seen.push(frame);
      })().catch(() => {});
      try {
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'ready' }), WAIT);
        await vi.waitFor(() => expect(seen[0]).toEqual({ type: 'ready' }), WAIT);
        await lab.writeFile('/workspace/watched/hello.txt', 'hi');
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'created', path: 'watched/hello.txt', kind: 'file' }), WAIT);
        await vi.waitFor(() => expect(seen).toContainEqual({ type: 'created', path: 'watched/hello.txt', kind: 'file' }), WAIT);
      } finally {
        abort.abort();
        await sse;
        await watch.close();
      }
    });

    it('reports every folder and file of trees made in one command, each once', async () => {
      // Many trees at once, by four writers: chokidar reads a new folder before it watches it, and what was made in
      // between was lost.
      const root = `burst-${Date.now().toString(36)}`;
      const writers = [0, 1, 2, 3];
      const trees = writers.flatMap((w) => Array.from({ length: 100 }, (_, i) => `${root}/${w}-${i}`));
      const watch = await WsWatch.open(wsUrl(`${API}/watch/ws`), ctl.authHeaders());
      try {
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'ready' }), WAIT);
        const writer = (w: number) => `(for i in $(seq 0 99); do mkdir -p ${root}/${w}-$i/b && echo x > ${root}/${w}-$i/b/f; done) &`;
        await exec(['sh', '-c', `cd /workspace && ${writers.map(writer).join(' ')} wait`]);
        const expected = [
          { type: 'created', path: root, kind: 'directory' },
          ...trees.flatMap((tree) => [
            { type: 'created', path: tree, kind: 'directory' },
            { type: 'created', path: `${tree}/b`, kind: 'directory' },
            { type: 'created', path: `${tree}/b/f`, kind: 'file' },
          ]),
        ];
        await vi.waitFor(() => expect(watch.frames).toEqual(expect.arrayContaining(expected)), WAIT);
        // A file written after them and awaited: a late duplicate of theirs has had its time to arrive.
        await lab.writeFile(`/workspace/${root}/done.txt`, 'done');
        await vi.waitFor(() => expect(watch.frames).toContainEqual({ type: 'created', path: `${root}/done.txt`, kind: 'file' }), WAIT);
        const created = watch.frames.filter((frame) => (frame as WatchFrame).type === 'created');
        expect(created).toHaveLength(expected.length + 1);
      } finally {
        await watch.close();
      }
    });
  });

  describe.sequential('token', () => {
    // Raw requests: a missing or wrong token is the point, which the client never sends.
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
      expect(await runnerError(lab.readFile('/workspace/pwned'))).toMatchObject({ status: 404, code: 'FILE_NOT_FOUND' });

      expect(await refusedUpgradeStatus(wsUrl(`${API}/terminal/ws`))).toBe(401);
      expect(await refusedUpgradeStatus(wsUrl(`${API}/watch/ws`), { authorization: 'Bearer wrong' })).toBe(401);
      expect(await refusedUpgradeStatus(wsUrl(`${API}/watch/ws`), ctl.authHeaders())).toBe(0);

      const health = await fetch(`${ctl.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'healthy', active_sessions: 1, docker_available: true });
      expect((await ctl.client.listSessions()).map((s) => s.session_id)).toEqual([SESSION]);
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
