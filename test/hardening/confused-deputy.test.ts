import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { dockerExec } from '../helpers/docker-exec.js';
import { TerminalClient } from '../helpers/ws-client.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * The agent runs as root inside a session whose files the learner controls. Here the learner attacks it as it would:
 * swapping folders for symbolic links while root works on them, planting links where the supervisor cleans up,
 * flooding a terminal. Nothing root-only may reach an image, nothing outside the learner's folders may be deleted
 * or chowned, learner processes cannot gain privileges, and bad input is a 4xx.
 */

const A = 'deputy-a';
const B = 'deputy-b';
const MiB = 1024 * 1024;

// Exchanges two paths atomically (renameat2 RENAME_EXCHANGE) until a stop file appears, so a name is always there:
// either the learner's folder or its symbolic link to a root-only place.
const SWAP = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = (p.encode() for p in sys.argv[1:4])
swaps = 0
while not os.path.exists(stop):
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        sys.exit('renameat2: ' + os.strerror(ctypes.get_errno()))
    swaps += 1
print(swaps)
`;

// Waits until someone starts emptying folder `a`, then exchanges it once with `b` (a link): a remover that walks by
// name goes on deleting through the link.
const SWAP_WHEN_EMPTIED = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = sys.argv[1:4]
full = len(os.listdir(a))
while not os.path.exists(stop):
    try:
        if len(os.listdir(a)) < full:
            libc.renameat2(-100, a.encode(), -100, b.encode(), 2)
            print('swapped')
            break
    except OSError:
        break
`;

describe.sequential('no confused deputy: root never acts for the learner on what the learner controls', () => {
  const ctl = hardeningController();
  const exec = (id: string, line: string, timeoutSeconds = 120) => ctl.exec(id, line, { timeoutSeconds });
  const asRoot = async (id: string, line: string) => dockerExec(ctl.docker, ctl.containerName(id), ['sh', '-c', line]);

  beforeAll(async () => {
    await sweepHardeningLeftovers();
    await buildImages();
    await ctl.start();
    await ctl.createSession(A);
    await ctl.createSession(B);
    await exec(A, `cat >/workspace/swap.py <<'EOF'\n${SWAP}\nEOF`);
    await exec(A, `cat >/workspace/swap-when-emptied.py <<'EOF'\n${SWAP_WHEN_EMPTIED}\nEOF`);
  });

  afterAll(async () => ctl.destroy());

  it('answers a # in a WebSocket or proxied path with 400 INVALID_PATH', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'aGFyZGVuaW5nLXN1aXRlIQ==', 'sec-websocket-version': '13' };
    for (const path of [`/sessions/${A}/watch/ws#x`, `/sessions/${A}/terminal/ws#x`, `/sessions/${A}/ports/8080/a#x`]) {
      const answer = await ctl.request('GET', path, { headers: upgrade });
      expect(answer.status, `${path}: ${answer.text}`).toBe(400);
      expect(answer.body.code, path).toBe('INVALID_PATH');
    }
    const plain = await ctl.request('GET', `/sessions/${A}/files#x`);
    expect(plain.status, plain.text).toBe(400);
    expect(plain.body.code).toBe('INVALID_PATH');
    expect((await ctl.agentHealth(A)).status).toBe(200);
  });

  it('runs execs and terminals with no-new-privileges and ships only the set-id binaries rootless Docker needs', async () => {
    expect((await exec(A, 'grep NoNewPrivs /proc/self/status')).stdout).toMatch(/NoNewPrivs:\s+1/);
    const terminal = await TerminalClient.open(ctl, A, 'nnp');
    try {
      terminal.type('grep NoNewPrivs /proc/$$/status; echo "nnp""-done"');
      await terminal.waitFor('nnp-done');
      expect(terminal.output).toMatch(/NoNewPrivs:\s+1/);
    } finally {
      terminal.close();
    }
    const setId = await asRoot(A, 'find / -xdev -perm /6000 -type f | sort');
    expect(setId.output.trim().split('\n')).toEqual(['/usr/bin/newgidmap', '/usr/bin/newuidmap']);
    // The daemon still gets its user namespace from them: the learner's inner containers run.
    expect((await exec(A, 'docker run --rm runner-busybox:latest echo inner-ok')).stdout).toContain('inner-ok');
  });

  it('never packs a root-only file into an image while the learner swaps a context folder for a symbolic link', async () => {
    const token = await ctl.agentToken(A);
    // d/token and e/shadow are the learner's decoys; their folders keep being exchanged with links to /run/runner and /etc.
    const setUp = [
      'rm -rf /workspace/ctx /workspace/links /workspace/stop-swap && mkdir -p /workspace/ctx/d /workspace/ctx/e /workspace/links',
      'echo decoy-token >/workspace/ctx/d/token && echo decoy-shadow >/workspace/ctx/e/shadow',
      'ln -s /run/runner /workspace/links/d && ln -s /etc /workspace/links/e',
      `printf 'FROM runner-busybox:latest\\nCOPY . /ctx\\nRUN find /ctx -type f -exec cat {} +\\n' >/workspace/ctx/Dockerfile`,
    ].join(' && ');
    expect((await exec(A, setUp)).exit_code).toBe(0);
    // Raw: under the swap race a build may be refused, and whatever it answers is searched for the token.
    const build = (tag: string) =>
      ctl.request('POST', `/sessions/${A}/build`, { body: { context_path: '/workspace/ctx', dockerfile_path: 'Dockerfile', image_tag: tag, no_cache: true }, timeoutMs: 300_000 });

    // Without a swap the build packs the decoys: the test sees what a context carries.
    const calm = await build('deputy:calm');
    expect(calm.status, calm.text).toBe(200);
    expect(calm.body.logs.join('\n')).toContain('decoy-token');

    const swappers = ['d', 'e'].map((name) => exec(A, `python3 /workspace/swap.py /workspace/ctx/${name} /workspace/links/${name} /workspace/stop-swap`, 300));
    try {
      for (let round = 0; round < 10; round += 1) {
        const answer = await build(`deputy:swap${round}`);
        const text = JSON.stringify(answer.body);
        expect(text, `round ${round} put the agent's token into the image`).not.toContain(token);
        expect(text, `round ${round} put /etc/shadow into the image`).not.toMatch(/root:[*!]/);
      }
    } finally {
      await exec(A, 'touch /workspace/stop-swap');
    }
    for (const swapper of swappers) {
      const result = await swapper;
      expect(result.exit_code, result.stderr).toBe(0);
      expect(Number(result.stdout.trim())).toBeGreaterThan(1000);
    }
    const images = await exec(A, 'docker image ls --format {{.Repository}}:{{.Tag}} deputy');
    for (const image of images.stdout.trim().split('\n').filter(Boolean)) {
      const files = await exec(A, `docker run --rm ${image} sh -c 'find /ctx -type f -exec cat {} +' 2>&1`);
      expect(files.stdout, image).not.toContain(token);
      expect(files.stdout, image).not.toMatch(/root:[*!]/);
    }
  });

  it("bounds what a flooded terminal buffers in the agent, and another session's agent keeps answering", async () => {
    const pidOfAgent = (await asRoot(A, "pgrep -f '^/usr/local/bin/node .*agent/main.js'")).output.trim();
    const memoryMiB = async (field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+)`).exec((await asRoot(A, `cat /proc/${pidOfAgent}/status`)).output)![1]) / 1024;
    // The peak starts again from now (earlier builds may have set it higher than the flood would).
    expect((await asRoot(A, `echo 5 >/proc/${pidOfAgent}/clear_refs`)).exitCode).toBe(0);
    const before = await memoryMiB('VmRSS');
    const terminal = await TerminalClient.open(ctl, A, 'flood');
    try {
      terminal.type('cat >/dev/null; echo "flood""-done"');
      // 1 MiB frames of 1 KiB lines, each sent as soon as the previous one left this process.
      const frame = Buffer.from(`${'x'.repeat(1023)}\n`.repeat(1024));
      for (let i = 0; i < 80; i += 1) {
        await new Promise<void>((resolve, reject) => terminal.socket.send(frame, { binary: true }, (error) => (error ? reject(error) : resolve())));
        if (i % 20 === 0) {
          expect((await ctl.agentHealth(B, 30_000)).status).toBe(200);
        }
      }
      terminal.socket.send('\u0004');
      await terminal.waitFor('flood-done', 300_000);
    } finally {
      terminal.close();
    }
    const after = await memoryMiB('VmHWM');
    expect(after - before, `the agent's peak memory went from ${before} to ${after} MiB`).toBeLessThan(40);
  });

  it('cleans up and chowns only the daemon’s own folders when the learner plants symbolic links and restarts it', async () => {
    // Root-owned files the learner cannot delete; the learner's runtime folder gets folders of the same names.
    const victim = '/var/victim';
    expect((await asRoot(A, `mkdir -p ${victim} && cd ${victim} && for i in $(seq 0 999); do echo v >f$i; done; chmod 755 ${victim}`)).exitCode).toBe(0);
    const victimState = async () => (await asRoot(A, `stat -c '%u:%g' ${victim}; ls ${victim} | wc -l`)).output.trim();
    const original = await victimState();
    expect(original).toBe('0:0\n1000');
    // A link to the victim, and a folder of the victim's names exchanged with a link to it once its removal starts.
    const plant = [
      // The link waits outside the runtime folder (on the same file system), where the clean-up does not remove it first.
      'rm -rf /tmp/dl && ln -s /var/victim /tmp/dl && cd /run/user/1000 && rm -rf d planted && ln -s /var/victim planted',
      // Many more than the victim has: removing them takes long enough for the learner, who gets little CPU then, to act.
      `python3 -c "import os; os.mkdir('d'); [open(f'd/f{i}', 'w').close() for i in range(20000)]"`,
    ].join(' && ');
    for (let round = 0; round < 3; round += 1) {
      const planted = await exec(A, plant);
      expect(planted.exit_code, `round ${round}: ${planted.stdout} ${planted.stderr}`).toBe(0);
      const restarts = (await ctl.agentHealth(A)).health!.daemon.restarts;
      await exec(A, 'rm -f /workspace/stop-restart');
      const swapper = exec(A, 'python3 /workspace/swap-when-emptied.py /run/user/1000/d /tmp/dl /workspace/stop-restart', 300);
      try {
        // The learner ends its own daemon at will; the supervisor cleans the runtime folder before starting the next.
        await exec(A, 'pkill -KILL -u learner -x rootlesskit');
        await vi.waitFor(async () => expect((await ctl.agentHealth(A)).health?.daemon.restarts ?? 0, 'the daemon restarts').toBeGreaterThan(restarts), { timeout: 60_000, interval: 250 });
        await sleep(3_000);
      } finally {
        await exec(A, 'touch /workspace/stop-restart');
        await swapper;
      }
      await vi.waitFor(async () => expect((await ctl.agentHealth(A)).health?.daemon.ready, 'the daemon is ready again').toBe(true), { timeout: 120_000, interval: 250 });
      expect(await victimState(), `round ${round}`).toBe(original);
    }
    expect((await exec(A, 'docker run --rm runner-busybox:latest echo back')).stdout).toContain('back');
  });
});
