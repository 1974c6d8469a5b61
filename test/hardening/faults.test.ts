import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { dockerExec } from '../helpers/docker-exec.js';
import { runnerError } from '../helpers/runner-error.js';
import { testEngineRemappedRoot } from '../helpers/test-engine.js';
import { TerminalClient } from '../helpers/ws-client.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * Faults a session must survive, each on a real session through a real controller process: the agent killed,
 * the inner daemon killed, the controller stopped and killed in the middle of requests and terminals, a full
 * workspace, a fork bomb, a memory bomb, a process that ignores SIGTERM. Figures (how long a recovery took, the
 * agent's slowest answer) are printed as `[hardening]` lines.
 */

const run = promisify(execFile);
// The bound for the agent's answers while a learner's bomb goes off: reported as a figure, not asserted
// (the machines are shared, so one answer may miss it by noise alone).
const AGENT_ANSWER_BUDGET_MS = 1_000;
// What is asserted: every answer comes within this, which an agent stalled by the bomb (as before the learner
// cgroup: no answer within 5 s) misses.
const AGENT_ANSWER_DEADLINE_MS = 5_000;

function figure(text: string): void {
  console.info(`[hardening] ${text}`);
}

describe.sequential('faults', () => {
  const ctl = hardeningController();
  const made: string[] = [];

  const createSession = async (id: string): Promise<void> => {
    made.push(id);
    await ctl.createSession(id);
  };

  /** Kills the agent (tini's child) with SIGKILL from inside the container, as root. */
  const killAgent = async (id: string): Promise<void> => {
    const killed = await dockerExec(ctl.docker, ctl.containerName(id), [
      'sh',
      '-c',
      'for p in $(cat /proc/1/task/1/children); do grep -q agent/main.js /proc/$p/cmdline && kill -9 $p && echo killed $p; done',
    ]);
    expect(killed.output, 'the agent was found and killed').toMatch(/^killed \d+/);
  };

  const agentBack = async (id: string, timeoutMs = 60_000): Promise<number> => {
    const started = performance.now();
    await vi.waitFor(async () => expect((await ctl.agentHealth(id, 2_000)).health?.status, `the agent of ${id} answers healthy again`).toBe('healthy'), { timeout: timeoutMs, interval: 250 });
    return (performance.now() - started) / 1000;
  };

  /**
   * Polls the agent's health every 250 ms for `ms`, each with the deadline as timeout: `failed` holds the statuses
   * of answers that did not come (0) or were not 200; `maxBefore` and `maxFrom` the slowest answers to polls sent
   * before `fromMs` and from then on.
   */
  const watchAgent = async (id: string, ms: number, fromMs = ms): Promise<{ answers: number; failed: number[]; slow: number[]; max: number; maxBefore: number; maxFrom: number }> => {
    const latencies: number[] = [];
    const failed: number[] = [];
    const slow: number[] = [];
    let maxBefore = 0;
    let maxFrom = 0;
    const started = performance.now();
    while (performance.now() - started < ms) {
      const sent = performance.now() - started;
      const { status, ms: took } = await ctl.agentHealth(id, AGENT_ANSWER_DEADLINE_MS);
      latencies.push(took);
      if (sent < fromMs) maxBefore = Math.max(maxBefore, Math.round(took));
      else maxFrom = Math.max(maxFrom, Math.round(took));
      if (status !== 200) failed.push(status);
      else if (took > AGENT_ANSWER_BUDGET_MS) slow.push(Math.round(took));
      await sleep(250);
    }
    return { answers: latencies.length, failed, slow, max: Math.round(Math.max(...latencies)), maxBefore, maxFrom };
  };
  const report = (what: string, watched: { answers: number; failed: number[]; slow: number[]; max: number }): void =>
    figure(`${what}: ${watched.answers} health answers, slowest ${watched.max} ms, over ${AGENT_ANSWER_BUDGET_MS} ms: ${JSON.stringify(watched.slow)}, failed: ${JSON.stringify(watched.failed)}`);

  beforeAll(async () => {
    await sweepHardeningLeftovers();
    await buildImages();
    await ctl.start();
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      console.info(`[hardening] controller log:\n${await ctl.logTail(60)}`);
      for (const id of made) {
        const logs = await ctl.docker.getContainer(ctl.containerName(id)).logs({ stdout: true, stderr: true, tail: 40 }).catch(() => '');
        console.info(`[hardening] session ${id} log:\n${String(logs)}`);
      }
    }
    if (!ctl.alive) await ctl.start();
    for (const id of made.splice(0)) await ctl.deleteSession(id).catch(() => {});
  });

  afterAll(async () => ctl.destroy());

  it('brings a session back within seconds after kill -9 of its agent: workspace intact, terminal reconnects', async () => {
    const id = 'agent-kill';
    await createSession(id);
    await ctl.client.session(id).writeFile('/workspace/keep.txt', 'kept');
    expect(ctl.lastResponse().status).toBe(201);
    const before = await TerminalClient.open(ctl, id, 'shell');
    before.type('echo before-""kill');
    await before.waitFor('before-kill');

    await killAgent(id);
    const closed = await before.closed;
    // The bridge reports the lost upstream with 1011; a client never hangs on a dead agent.
    expect(closed.code).toBe(1011);
    const seconds = await agentBack(id);
    figure(`agent kill -9: session answering again after ${seconds.toFixed(1)} s`);

    const info = await ctl.docker.getContainer(ctl.containerName(id)).inspect();
    // tini exits with its child, so the container ends and Docker's restart policy starts it again.
    expect(info.RestartCount).toBe(1);
    expect(await ctl.client.getSession(id)).toMatchObject({ status: 'running' });
    expect(await ctl.client.session(id).readFile('/workspace/keep.txt')).toMatchObject({ content: 'kept' });
    // The shell died with the old container: the same terminal id opens a fresh one.
    const after = await TerminalClient.open(ctl, id, 'shell');
    try {
      after.type('echo after-""kill');
      await after.waitFor('after-kill');
    } finally {
      after.close();
    }
  });

  it('brings a session back however often its agent is killed (Docker gives up after MaximumRetryCount)', async () => {
    const id = 'agent-kills';
    await createSession(id);
    for (let kill = 1; kill <= 6; kill++) {
      await killAgent(id);
      const seconds = await agentBack(id).catch((error: Error) => {
        throw new Error(`after kill ${kill}: ${error.message}`);
      });
      figure(`agent kill ${kill}: back after ${seconds.toFixed(1)} s`);
    }
  });

  it('restarts a killed inner dockerd; preloaded and built images are still there', async () => {
    const id = 'dockerd-kill';
    await createSession(id);
    const dockerfile = 'FROM runner-busybox:latest\nRUN echo built >/built\n';
    await ctl.client.session(id).writeFile('/workspace/app/Dockerfile', dockerfile);
    expect(ctl.lastResponse().status).toBe(201);
    expect(await ctl.client.session(id).build({ context_path: '/workspace/app', image_tag: 'hard-built:1' })).toMatchObject({ image_tag: 'hard-built:1' });

    // The learner owns the rootless daemon and can kill it.
    await ctl.exec(id, ['pkill', '-KILL', '-x', 'dockerd']);
    const started = performance.now();
    await vi.waitFor(
      async () => {
        const daemon = (await ctl.agentHealth(id)).health?.daemon;
        expect(daemon !== undefined && daemon.restarts >= 1 && daemon.ready, `the inner daemon is back: ${JSON.stringify(daemon)}`).toBe(true);
      },
      { timeout: 90_000, interval: 250 },
    );
    const seconds = (performance.now() - started) / 1000;
    figure(`inner dockerd kill -9: ready again after ${seconds.toFixed(1)} s`);
    const images = await ctl.client.session(id).images();
    const tags = images.images.flatMap((image) => image.tags);
    expect(tags).toEqual(expect.arrayContaining(['runner-busybox:latest', 'hard-built:1']));
    const built = await ctl.exec(id, ['docker', 'run', '--rm', 'hard-built:1', 'cat', '/built']);
    expect(built.stdout).toBe('built\n');
  });

  it('SIGTERM to the controller mid-request and mid-terminal: requests finish, terminals close 1001, the shell survives', async () => {
    const id = 'ctl-term';
    await createSession(id);
    const terminal = await TerminalClient.open(ctl, id, 'shell');
    terminal.type('echo $$ >/tmp/shell-pid; echo mark-""one');
    await terminal.waitFor('mark-one');
    const shellPid = (await ctl.exec(id, 'cat /tmp/shell-pid')).stdout;

    // Raw while the controller stops: what happens to the connection itself is the point.
    const inflight = ctl.request('POST', `/sessions/${id}/exec`, { body: { command: ['sh', '-c', 'sleep 3; echo finished'] } });
    const stream = ctl.request('POST', `/sessions/${id}/exec/stream`, { body: { command: ['sh', '-c', 'sleep 3; echo streamed'] } });
    await vi.waitFor(async () => expect((await ctl.exec(id, 'ps -eo args | grep -c "^sleep 3$"')).stdout.trim(), 'both commands run').toBe('2'), { timeout: 90_000, interval: 250 });
    await ctl.stop('SIGTERM');

    expect((await terminal.closed).code).toBe(1001);
    const answered = await inflight;
    expect({ status: answered.status, stdout: answered.body?.stdout }).toEqual({ status: 200, stdout: 'finished\n' });
    const streamed = await stream;
    expect(streamed.status).toBe(200);
    expect(streamed.text).toContain('"type":"exit"');

    await ctl.start();
    expect(await ctl.client.getSession(id)).toMatchObject({ status: 'running' });
    const again = await TerminalClient.open(ctl, id, 'shell');
    try {
      // The same shell: its scrollback comes back, and it is the same process.
      await again.waitFor('mark-one');
      again.type('echo pid-$$-""now');
      await again.waitFor(`pid-${shellPid.trim()}-now`);
    } finally {
      again.close();
    }
  });

  it('SIGKILL to the controller mid-request and mid-terminal: clients see the connection end, the session and shell survive', async () => {
    const id = 'ctl-kill';
    await createSession(id);
    const terminal = await TerminalClient.open(ctl, id, 'shell');
    terminal.type('echo $$ >/tmp/shell-pid; echo mark-""two');
    await terminal.waitFor('mark-two');
    const shellPid = (await ctl.exec(id, 'cat /tmp/shell-pid')).stdout.trim();

    // Raw while the controller is killed: what happens to the connection itself is the point.
    const inflight = ctl.request('POST', `/sessions/${id}/exec`, { body: { command: ['sleep', '3131'] } });
    await vi.waitFor(async () => expect((await ctl.exec(id, 'ps -eo args | grep -c "^sleep 3131$"')).stdout.trim(), 'the command runs').toBe('1'), { timeout: 90_000, interval: 250 });
    await ctl.stop('SIGKILL');

    const answered = await inflight;
    expect(answered.status, 'no answer can come from a killed process').toBe(0);
    expect(answered.error).toMatch(/socket hang up|ECONNRESET/);
    expect((await terminal.closed).code).toBe(1006);

    await ctl.start();
    expect(await ctl.client.getSession(id)).toMatchObject({ status: 'running' });
    // The agent saw its client go and ended the command.
    await vi.waitFor(async () => expect((await ctl.exec(id, 'ps -eo args | grep -c "^sleep 3131$"')).stdout.trim(), 'the orphaned command is gone').toBe('0'), { timeout: 30_000, interval: 250 });
    const again = await TerminalClient.open(ctl, id, 'shell');
    try {
      await again.waitFor('mark-two');
      again.type('echo pid-$$-""now');
      await again.waitFor(`pid-${shellPid}-now`);
    } finally {
      again.close();
    }
  });

  it('answers a full workspace with 507 NO_SPACE and keeps working', async () => {
    const id = 'disk-full';
    await createSession(id);
    // The workspace volume has no size of its own (it would fill the host's disk): a 16 MiB tmpfs over /workspace,
    // mounted in the session's mount namespace from the host, stands in for a full one.
    const { State } = await ctl.docker.getContainer(ctl.containerName(id)).inspect();
    // On a remapped engine the session's mount namespace belongs to its user namespace: mount as its root, in it.
    const userns = (await testEngineRemappedRoot()) ? ['-U'] : [];
    await run('nsenter', ['-t', String(State.Pid), ...userns, '-m', 'mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755,uid=1000,gid=1000', 'rthard-full', '/workspace']);

    const fill = await ctl.exec(id, 'dd if=/dev/zero of=/workspace/fill bs=1M count=64');
    expect(fill.exit_code).not.toBe(0);
    expect(fill.stderr).toContain('No space left on device');
    const lab = ctl.client.session(id);
    expect(await runnerError(lab.writeFile('/workspace/more.bin', new Uint8Array(1024 * 1024)))).toMatchObject({ status: 507, code: 'NO_SPACE' });
    // The failed write left no temporary file behind.
    expect((await lab.listFiles('/workspace')).entries.map((e) => e.name)).toEqual(['fill']);

    expect((await ctl.agentHealth(id)).health?.status).toBe('healthy');
    expect((await ctl.exec(id, 'echo still fine')).stdout).toBe('still fine\n');
    const terminal = await TerminalClient.open(ctl, id, 'full');
    try {
      terminal.type('echo term-""fine');
      await terminal.waitFor('term-fine');
    } finally {
      terminal.close();
    }
    expect(await lab.deleteFile('/workspace/fill')).toEqual({ path: '/workspace/fill' });
    expect(await lab.writeFile('/workspace/more.bin', new Uint8Array(1024 * 1024))).toEqual({ path: '/workspace/more.bin', size: 1024 * 1024 });
    expect(ctl.lastResponse().status).toBe(201);
  });

  it('runs learner processes (exec, terminal, inner dockerd) in groups of their own below the learner cgroup', async () => {
    const id = 'cgroup';
    await createSession(id);
    // /proc/<pid>/cgroup lines such as `8:pids:/learner/dockerd` and `1:cpu:/learner/dockerd` (or `cpu,cpuacct`).
    const groupsNamed = (cgroups: string, group: string): string[] =>
      cgroups.split('\n').filter((line) => new RegExp(`^\\d+:(?:\\w+,)*(?:pids|cpu)(?:,\\w+)*:/learner/${group}$`).test(line));
    // An exec's group is its own, below the learner's.
    const execCgroups = (await ctl.exec(id, ['cat', '/proc/self/cgroup'])).stdout;
    expect(groupsNamed(execCgroups, 'exec-[0-9a-f]{12}')).toHaveLength(2);
    expect(groupsNamed((await ctl.exec(id, 'cat /proc/$(pgrep -x -o dockerd)/cgroup')).stdout, 'dockerd')).toHaveLength(2);
    const terminal = await TerminalClient.open(ctl, id, 'cgroup');
    try {
      terminal.type('grep -c :/learner/terminals /proc/$$/cgroup; echo shell-""done');
      await terminal.waitFor(/2\s+shell-done/);
    } finally {
      terminal.close();
    }
    // Neither the agent's group, nor the session's root, nor the read-only view under /sys takes a learner pid.
    for (const procs of ['/run/agent-cgroups/pids/agent/cgroup.procs', '/run/agent-cgroups/cpu/cgroup.procs', '/sys/fs/cgroup/pids/cgroup.procs']) {
      const moved = await ctl.exec(id, `echo $$ > ${procs} && grep pids /proc/self/cgroup`);
      expect(moved.exit_code, `${procs}: ${moved.stdout}`).not.toBe(0);
      expect(moved.stderr).toMatch(/Permission denied|Read-only file system/);
    }
    expect((await ctl.exec(id, 'mkdir /run/agent-cgroups/pids/learner/escape')).exit_code).not.toBe(0);
  });

  it("keeps every process in its exec's cgroup: one that tries every cgroup.procs is refused and dies with the timeout", async () => {
    const id = 'cgroup-escape';
    await createSession(id);
    // Leaves the exec's process tree (double fork, setsid), then writes its pid to every cgroup.procs and tasks
    // file under the session's cgroup mounts but its own exec's group, logs each answer, and sleeps.
    const escaper = `import errno, os, re, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): os._exit(0)
null = os.open('/dev/null', os.O_RDWR)
for fd in (0, 1, 2): os.dup2(null, fd)
own = re.search(r'exec-[0-9a-f]+', open('/proc/self/cgroup').read()).group(0)
mounts = [line.split(' ')[4] for line in open('/proc/self/mountinfo') if re.search(r' - cgroup2? ', line)]
with open('/workspace/escape.log', 'w') as log:
    for mount in mounts:
        for folder, _, files in os.walk(mount):
            if own in folder.split('/'): continue
            for name in ('cgroup.procs', 'tasks'):
                if name not in files: continue
                path = os.path.join(folder, name)
                try:
                    with open(path, 'w') as procs: procs.write(str(os.getpid()))
                    print('moved', path, file=log)
                except OSError as error:
                    print('refused', path, errno.errorcode[error.errno], file=log)
    print('done', file=log)
time.sleep(600)
`;
    await ctl.client.session(id).writeFile('/workspace/escape.py', new TextEncoder().encode(escaper));
    expect(ctl.lastResponse().status).toBe(201);
    const timedOut = await ctl.exec(id, 'python3 escape.py; until grep -qx done escape.log 2>/dev/null; do sleep 0.1; done; sleep 300', { timeoutSeconds: 10 });
    expect(timedOut.timed_out).toBe(true);
    const attempts = (await ctl.exec(id, ['cat', 'escape.log'])).stdout.trim().split('\n');
    expect(attempts.pop()).toBe('done');
    expect(attempts.filter((attempt) => !attempt.startsWith('refused ')), 'the attempts that moved it').toEqual([]);
    await vi.waitFor(async () => expect((await ctl.exec(id, ['pgrep', '-f', '[e]scape.py'])).exit_code, 'the escaper is killed with its exec').toBe(1), { timeout: 10_000, interval: 250 });
    // It found the session's cgroup mounts, the learner's own groups among them.
    expect(attempts).toContain('refused /run/agent-cgroups/pids/learner/cgroup.procs EACCES');
    for (const attempt of attempts) {
      // The agent's mounts refuse (EACCES, EPERM); the session's /sys/fs/cgroup is also a read-only mount (EROFS, or
      // EACCES first on a remapped engine, where its files are the session root's).
      expect(attempt).toMatch(attempt.includes(' /sys/fs/cgroup/') ? /^refused \S+ (EACCES|EPERM|EROFS)$/ : /^refused \/run\/agent-cgroups\/\S+ (EACCES|EPERM)$/);
    }
  });

  it("kills what a timed-out exec started, also a daemon that left its process tree; a finished exec's background process runs on", async () => {
    const id = 'exec-group';
    await createSession(id);
    const running = async (tag: string) => (await ctl.exec(id, ['pgrep', '-f', `sleep ${tag}`])).exit_code === 0;
    // A double fork: the subshell exits at once, so `sleep 4711` is re-parented to init, out of the exec's tree.
    const timedOut = await ctl.exec(id, '(setsid sleep 4711 </dev/null >/dev/null 2>&1 &); sleep 300', { timeoutSeconds: 2 });
    expect(timedOut.timed_out).toBe(true);
    await vi.waitFor(async () => expect(await running('4711'), 'the escaped daemon is killed').toBe(false), { timeout: 10_000, interval: 250 });
    // Not timed out: a server started in the background is the learner's to keep.
    expect((await ctl.exec(id, '(setsid sleep 4712 </dev/null >/dev/null 2>&1 &)')).exit_code).toBe(0);
    expect(await running('4712')).toBe(true);
    // Execs at once each get a group of their own; none removes another's before its command joined it.
    const together = await Promise.all(Array.from({ length: 10 }, (_, i) => ctl.exec(id, `echo together-${i}`)));
    expect(together.map((r) => `${r.exit_code} ${r.stdout.trim()}`)).toEqual(together.map((_, i) => `0 together-${i}`));
    // Its group goes once it is empty (beside it wait the spare exec process's group and the one made for the next).
    const daemonGroup = (await ctl.exec(id, 'grep -ho "learner/exec-[0-9a-f]*" /proc/$(pgrep -f "^sleep 4712")/cgroup | head -1')).stdout.trim();
    expect(daemonGroup).toMatch(/^learner\/exec-[0-9a-f]+$/);
    const groupExists = async () => (await ctl.exec(id, ['test', '-d', `/run/agent-cgroups/pids/${daemonGroup}`])).exit_code === 0;
    expect(await groupExists()).toBe(true);
    expect((await ctl.exec(id, ['pkill', '-f', 'sleep 4712'])).exit_code).toBe(0);
    await vi.waitFor(async () => expect(await groupExists(), 'the emptied group is removed').toBe(false), { timeout: 10_000, interval: 250 });
  });

  it('contains a fork bomb to its session while the agent answers throughout; the session works once it is killed', async () => {
    const id = 'fork-bomb';
    await createSession(id);
    await createSession('bystander');
    // The shell holds the bomb's process group until the exec's timeout kills the group (no fork needed to wait).
    const bomb = ctl.exec(id, ['bash', '-c', 'mkfifo /tmp/hold && b(){ b|b& }; b; read -t 120 <>/tmp/hold'], { timeoutSeconds: 15 });
    // From 14 s on, the polls meet the kill: ~2000 processes dying at once.
    const watched = await watchAgent(id, 20_000, 14_000);
    report('fork bomb', watched);
    figure(`fork bomb: slowest answer while it runs ${watched.maxBefore} ms, from 14 s on (the timeout's kill) ${watched.maxFrom} ms`);
    expect((await bomb).timed_out).toBe(true);
    expect(watched.failed).toEqual([]);
    // Contained: another session and the controller carried on.
    expect((await ctl.exec('bystander', 'echo unaffected')).stdout).toBe('unaffected\n');
    expect(await ctl.client.health()).toMatchObject({ status: 'healthy' });
    // Killed with its group, the bomb leaves the session usable: commands run, the inner daemon is (back) up.
    const started = performance.now();
    await vi.waitFor(
      async () => expect((await ctl.exec(id, ['pgrep', '-c', '-x', 'bash'], { timeoutSeconds: 5 })).stdout, 'the fork bomb is gone and the session runs commands').toBe('0\n'),
      { timeout: 60_000, interval: 250 },
    );
    const seconds = (performance.now() - started) / 1000;
    expect((await ctl.exec(id, 'echo after-bomb')).stdout).toBe('after-bomb\n');
    await vi.waitFor(async () => expect((await ctl.agentHealth(id)).health?.daemon.ready, 'the inner daemon is ready').toBe(true), { timeout: 60_000, interval: 250 });
    figure(`fork bomb: session running commands again ${seconds.toFixed(1)} s after the exec timed out`);
    const deleted = await ctl.deleteSession(id);
    expect(deleted).toMatchObject({ found: true });
    expect((await ctl.leftovers()).containers).toEqual([ctl.containerName('bystander')]);
  });

  it('kills a memory bomb, not the agent, which answers throughout', async () => {
    const id = 'memory-bomb';
    await createSession(id);
    const before = (await ctl.agentHealth(id)).health!;
    const hog = ctl.exec(id, ['python3', '-c', 'a = []\nwhile True: a.append(bytearray(64 * 1024 * 1024))'], { timeoutSeconds: 60 });
    const watched = await watchAgent(id, 15_000);
    const result = await hog;
    report(`memory bomb (exit ${result.exit_code})`, watched);
    // 137: SIGKILL from the OOM killer.
    expect(result.exit_code).toBe(137);
    const after = (await ctl.agentHealth(id)).health!;
    expect(after.uptime_seconds).toBeGreaterThan(before.uptime_seconds);
    expect(after.daemon).toMatchObject({ ready: true });
    expect((await ctl.docker.getContainer(ctl.containerName(id)).inspect()).RestartCount).toBe(0);
    expect(watched.failed).toEqual([]);
  });

  it('removes a session at once although a learner process ignores SIGTERM', async () => {
    const id = 'stubborn';
    await createSession(id);
    await ctl.exec(id, `setsid sh -c 'trap "" TERM HUP INT; exec sleep 4343' </dev/null >/dev/null 2>&1 &`);
    const hostPids = async (): Promise<number[]> => {
      const pids: number[] = [];
      for (const entry of await readdir('/proc')) {
        const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
        if (cmdline === 'sleep\u00004343\u0000') pids.push(Number(entry));
      }
      return pids;
    };
    await vi.waitFor(async () => expect(await hostPids(), 'the stubborn process runs').toHaveLength(1), { timeout: 10_000, interval: 250 });
    const started = performance.now();
    const deleted = await ctl.deleteSession(id);
    figure(`delete with a SIGTERM-ignoring process: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    expect(deleted).toMatchObject({ found: true });
    expect(await hostPids()).toEqual([]);
    expect(await ctl.leftovers()).toMatchObject({ containers: [], volumes: [], folders: [] });
  });
});
