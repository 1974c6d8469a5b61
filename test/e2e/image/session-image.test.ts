import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import type WebSocket from 'ws';
import { docker, removeLeftovers, startSession, type SessionContainer } from '../../helpers/session-container.js';
import { TEST_SESSION_IMAGE } from '../../helpers/session-image.js';

const PREFIX = 'rse2e-image';

/** Sends `input` to a terminal and resolves with everything it printed once `until` matches. */
function terminalOutput(ws: WebSocket, input: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`terminal never printed ${until}: ${JSON.stringify(output)}`)), 20_000);
    ws.on('message', (data: Buffer) => {
      output += data.toString('utf8');
      if (until.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    });
    ws.once('error', reject);
    ws.once('open', () => ws.send(input));
  });
}

describe.sequential('session image', () => {
  let session: SessionContainer;

  beforeAll(async () => {
    await removeLeftovers(PREFIX);
    session = await startSession({ prefix: PREFIX });
    await session.waitHealthy();
  });
  afterAll(async () => session?.remove());

  it('reports healthy with a ready rootless inner daemon', async () => {
    const res = await session.call<Record<string, unknown>>('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'healthy',
      daemon: { ready: true, rootless: true, supervised: true, last_error: null },
    });
  });

  it('refuses a request without the token', async () => {
    const dispatcher = new Agent({ connect: { socketPath: session.socketPath } });
    const res = await request('http://session/health', { dispatcher });
    expect(res.statusCode).toBe(401);
    await res.body.dump();
    await dispatcher.close();
  });

  it("answers bad input with zod's English messages: the bundle carries only that locale (image/bundle-agent.mjs)", async () => {
    const res = await session.call<{ code: string; message: string }>('POST', '/exec', { command: 5 });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'VALIDATION', message: 'body/command Invalid input: expected array, received number' });
  });

  it('has the preloaded busybox in the inner daemon', async () => {
    const res = await session.exec(['docker', 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
    expect(res.stdout.split('\n')).toContain('runner-busybox:latest');
  });

  it("starts the agent from the V8 code cache made at build time, with the image's own command and flags", async () => {
    const { Config } = await docker.getImage(TEST_SESSION_IMAGE).inspect();
    // The same start as the session's, ended right after the bundle is loaded by a learner uid that is no number.
    const start = await session.dockerExec(['env', 'NODE_DEBUG_NATIVE=COMPILE_CACHE', 'AGENT_LEARNER_UID=none', ...Config.Cmd!]);
    expect(start.output).toContain('V8 code cache for ESM file:///opt/runner/agent/main.js was accepted');
  });

  it('reports rootless from docker info inside, as the learner', async () => {
    const res = await session.exec(['docker', 'info', '--format', '{{json .SecurityOptions}} {{.Driver}}']);
    expect(res.exit_code).toBe(0);
    expect(res.stdout).toContain('name=rootless');
    expect(res.stdout).toContain('overlay2');
  });

  it("runs the inner containerd on dockerd's config with a GC scheduler that lets it sleep, without the restart monitor", async () => {
    // The learner owns containerd, so it can read the config containerd was started with through /proc.
    const script = 'pid=$(pgrep -x containerd) && config=$(tr "\\0" "\\n" </proc/$pid/cmdline | sed -n "/^--config$/{n;p;}") && cat /proc/$pid/root$config';
    const res = await session.exec(['sh', '-c', script]);
    expect(res.exit_code, res.stderr).toBe(0);
    // dockerd's own settings are still there, its socket in the learner's runtime folder among them.
    expect(res.stdout).toContain('address = "/run/user/1000/docker/containerd/containerd.sock"');
    expect(res.stdout).toMatch(/^disabled_plugins = \["restart", "cri"\]$/m);
    expect(res.stdout).toMatch(/^\[plugins\.scheduler\]\n {2}pause_threshold = 0\.00001\n {2}deletion_threshold = 1$/m);
  });

  it('runs exec as uid 1000, who cannot become root or read the agent token', async () => {
    expect((await session.exec(['id', '-u'])).stdout.trim()).toBe('1000');
    const setuid = await session.exec(['python3', '-c', 'import os; os.setuid(0)']);
    expect(setuid.exit_code).not.toBe(0);
    expect(setuid.stderr).toContain('Operation not permitted');
    const token = await session.exec(['cat', '/run/runner/token']);
    expect(token.exit_code).not.toBe(0);
    expect(token.stdout).toBe('');
    const su = await session.exec(['sh', '-c', 'su -c id root </dev/null']);
    expect(su.exit_code).not.toBe(0);
    const etc = await session.exec(['touch', '/etc/owned']);
    expect(etc.exit_code).not.toBe(0);
  });

  it('starts execs as the static learner-exec, which waits as root, and runs them with no-new-privileges', async () => {
    // Spares wait for the next execs (two, less one whose cgroup is still being made); this exec ran in another.
    const ps = await session.exec(['ps', '-eo', 'user=,args=']);
    const waiting = ps.stdout.split('\n').filter((line) => line.includes('/opt/runner/agent/learner-exec '));
    expect(waiting.length).toBeGreaterThanOrEqual(1);
    expect(waiting.length).toBeLessThanOrEqual(2);
    for (const line of waiting) expect(line).toMatch(/^root +\/opt\/runner\/agent\/learner-exec 1000 1000( \S+cgroup\.procs)*$/);
    const status = (await session.exec(['cat', '/proc/self/status'])).stdout;
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Groups:\s*$/m);
    // No PT_INTERP (3) among its program headers: no dynamic loader runs in it.
    const script = `import struct,sys
e=open(sys.argv[1],'rb').read()
off,size,n=struct.unpack_from('<Q',e,32)[0],struct.unpack_from('<H',e,54)[0],struct.unpack_from('<H',e,56)[0]
print(sorted({struct.unpack_from('<I',e,off+i*size)[0] for i in range(n)}))`;
    const types = await session.exec(['python3', '-c', script, '/opt/runner/agent/learner-exec']);
    expect(types.stdout).toMatch(/^\[.*\b1\b.*\]\n$/);
    expect(JSON.parse(types.stdout)).not.toContain(3);
  });

  it("keeps the token and socket away from the learner's containers", async () => {
    const res = await session.exec(['docker', 'run', '--rm', '-v', '/run/runner:/agent', 'runner-busybox', 'cat', '/agent/token']);
    expect(res.exit_code).not.toBe(0);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/Permission denied/);
  });

  it('runs the terminal as uid 1000, with the docker CLI reaching the rootless daemon', async () => {
    const ws = session.openWebSocket('/terminal/ws');
    try {
      const output = await terminalOutput(ws, 'echo "uid=$(id -u)" && docker info --format "{{.SecurityOptions}}"\r', /uid=\d+[\s\S]*rootless/);
      expect(output).toMatch(/uid=1000/);
    } finally {
      ws.close();
    }
  });

  it('builds from the preloaded busybox, runs it with a port, reaches it with curl from an exec, stops it', async () => {
    const dockerfile = [
      'FROM runner-busybox:latest',
      'RUN mkdir -p /www && echo hello-from-session >/www/index.html',
      'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
    ].join('\n');
    const put = await session.call('PUT', '/files/workspace/app/Dockerfile', { content: dockerfile });
    expect(put.status).toBeLessThan(300);

    const build = await session.call<{ image_tag: string; logs: string[] }>('POST', '/build', {
      context_path: '/workspace/app',
      dockerfile_path: 'Dockerfile',
      image_tag: 'lab-web:1',
    });
    expect(build.status, JSON.stringify(build.body)).toBe(200);
    expect(build.body.image_tag).toBe('lab-web:1');

    const run = await session.call<{ container_name: string }>('POST', '/run', {
      image: 'lab-web:1',
      name: 'lab-web',
      ports: ['8080:8080'],
    });
    expect(run.status, JSON.stringify(run.body)).toBe(200);

    // The judge's way: curl from inside the session, retried while httpd starts.
    const curl = await session.exec(['curl', '-sS', '--retry', '20', '--retry-connrefused', '--retry-delay', '1', 'http://127.0.0.1:8080/']);
    expect(curl.stdout.trim()).toBe('hello-from-session');

    const stop = await session.call<{ stopped: boolean; removed: boolean }>('POST', '/stop', { container_name: 'lab-web', timeout: 2 });
    expect(stop.status).toBe(200);
    expect(stop.body).toMatchObject({ stopped: true, removed: true });
    const after = await session.exec(['curl', '-sS', 'http://127.0.0.1:8080/']);
    expect(after.exit_code).not.toBe(0);
  });

  it('leaves no defunct process after 20 inner docker runs', async () => {
    const runs = await session.exec(['sh', '-c', 'for i in $(seq 20); do docker run --rm runner-busybox true || exit 1; done'], 240);
    expect(runs.exit_code, runs.stderr).toBe(0);
    const ps = await session.exec(['ps', '-e', '-o', 'stat=,pid=,comm=']);
    const zombies = ps.stdout.split('\n').filter((line) => line.trim().startsWith('Z'));
    expect(zombies).toEqual([]);
  });

  it('kills a memory hog while the agent and the inner daemon keep answering', async () => {
    const hog = await session.exec(['python3', '-c', 'chunks = []\nwhile True: chunks.append(bytearray(64 << 20))'], 120);
    expect(hog.exit_code).toBe(137);
    const health = await session.call<{ status: string }>('GET', '/health');
    expect(health.body.status).toBe('healthy');
    expect((await session.exec(['docker', 'run', '--rm', 'runner-busybox', 'echo', 'alive'])).stdout.trim()).toBe('alive');
  });
});
