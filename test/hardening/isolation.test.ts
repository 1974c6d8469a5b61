import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { testDocker } from '../helpers/test-engine.js';
import { TerminalClient } from '../helpers/ws-client.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * What a learner (an exec, a terminal, an inner container) can reach from a session: not the agent's token, not
 * the host's Docker engine, not another session, not the controller. The controller runs as deployed: with a
 * token, listening on every address of the host (0.0.0.0), the sessions network's gateway included.
 */

const A = 'iso-a';
const B = 'iso-b';
const SECRET_OF_B = 'secret-of-b';

// Walks the file system the learner can read, and every readable /proc/<pid>/{environ,cmdline}, for the token
// given on stdin (never on a command line, where it would be found in /proc).
const FIND_TOKEN = `
import os, sys
token = sys.stdin.read().strip().encode()
skip = {'/proc', '/sys', '/dev', '/home/learner/.local/share/docker'}
hits = []
for root, dirs, files in os.walk('/'):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
    for name in files:
        path = os.path.join(root, name)
        try:
            if not os.path.islink(path) and os.path.isfile(path) and os.path.getsize(path) < 64 << 20:
                with open(path, 'rb') as f:
                    if token in f.read():
                        hits.append(path)
        except OSError:
            pass
for pid in filter(str.isdigit, os.listdir('/proc')):
    for part in ('environ', 'cmdline'):
        try:
            with open(f'/proc/{pid}/{part}', 'rb') as f:
                if token in f.read():
                    hits.append(f'/proc/{pid}/{part}')
        except OSError:
            pass
print('\\n'.join(hits))
`;

describe.sequential('isolation of sessions', () => {
  // The host guard (its own test) refuses every host port at the host's INPUT chain, before the controller sees a
  // connection. Off here, so that these cases check the second line on their own: the controller's listener guard.
  const ctl = hardeningController({ host: '0.0.0.0', env: { SESSION_HOST_GUARD: 'false' } });
  let gateway = '';
  let addressOfB = '';

  const exec = async (id: string, line: string) => ctl.exec(id, line, { timeoutSeconds: 120 });
  // An HTTP GET from an inner container of A with nc: busybox-static's wget crashes (exit 139) on any URL, so a
  // failed wget would prove nothing. Its input stays open 2 s, as nc quits at its end before the answer comes.
  const getFromInner = async (host: string, port: number, path = '/') => {
    const request = `(printf 'GET ${path} HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n'; sleep 2) | nc -w 3 ${host} ${port}`;
    return ctl.exec(A, ['docker', 'run', '--rm', 'runner-busybox:latest', 'sh', '-c', request], { timeoutSeconds: 120 });
  };

  beforeAll(async () => {
    await sweepHardeningLeftovers();
    await buildImages();
    await ctl.start();
    await ctl.createSession(A);
    await ctl.createSession(B);
    // B serves a page from an inner container on a published port and keeps a file in its workspace.
    const web = `mkdir -p /www && echo ${SECRET_OF_B} >/www/index.html && httpd -f -p 8080 -h /www`;
    expect((await ctl.exec(B, ['docker', 'run', '-d', '-p', '8080:8080', 'runner-busybox:latest', 'sh', '-c', web])).exit_code).toBe(0);
    expect((await exec(B, `echo ${SECRET_OF_B} >/workspace/b.txt`)).exit_code).toBe(0);
    const network = await ctl.docker.getNetwork(ctl.network).inspect();
    gateway = (network.IPAM?.Config?.[0]?.Gateway as string | undefined) ?? '';
    const info = await ctl.docker.getContainer(ctl.containerName(B)).inspect();
    addressOfB = info.NetworkSettings.Networks[ctl.network]!.IPAddress;
    // The page is up: the host (and the controller's ports route) reaches it.
    await vi.waitFor(async () => expect(await fetch(`http://${addressOfB}:8080/`).then((r) => r.text()), "B's page answers the host").toBe(`${SECRET_OF_B}\n`), { timeout: 30_000, interval: 250 });
  });

  afterAll(async () => ctl.destroy());

  it("keeps the agent's token from the learner: not in a file, a process, or the environment", async () => {
    const token = await ctl.agentToken(A);
    for (const attempt of ['cat /run/runner/token', 'ls /run/runner', 'cat /proc/1/environ', 'cat /proc/$(pgrep -o -f agent/main.js)/environ']) {
      const result = await exec(A, attempt);
      expect(result.exit_code, attempt).not.toBe(0);
      expect(result.stdout, attempt).not.toContain(token);
    }
    const search = await ctl.client.session(A).exec({ command: ['python3', '-c', FIND_TOKEN], stdin: token, timeout_seconds: 240 });
    expect(search.exit_code, search.stderr).toBe(0);
    expect(search.stdout.trim()).toBe('');
    const env = await exec(A, 'env');
    expect(env.stdout).not.toContain(token);
    expect(env.stdout).not.toMatch(/^AGENT_/m);
  });

  it("hands a learner's command none of the agent's descriptors, while a terminal, a watch and another exec are open", async () => {
    // The shell's own descriptors, listed by a child (a shell listing itself would see the folder it reads).
    const LIST_FDS = 'command ls -l --color=never /proc/$$/fd/';
    const descriptors = (listing: string) => [...listing.matchAll(/ (\d+) -> (\S+)/g)].map((m) => `${m[1]} ${m[2]}`);
    const session = ctl.client.session(A);
    const watching = new AbortController();
    const watch = session.watch({ signal: watching.signal });
    await watch.next();
    const terminal = await TerminalClient.open(ctl, A, 'fds');
    const other = session.exec({ command: ['sleep', '5'] });
    try {
      const listed = await session.exec({ command: ['sh', '-c', LIST_FDS] });
      const fds = descriptors(listed.stdout);
      expect(fds.map((fd) => fd.split(' ')[0]), listed.stdout).toEqual(['0', '1', '2']);
      expect(fds[0]).toBe('0 /dev/null');

      terminal.type(`${LIST_FDS}; echo fds-""done`);
      await terminal.waitFor('fds-done');
      const inTerminal = descriptors(terminal.output);
      // An interactive bash keeps a copy of its terminal at 255; every descriptor is that terminal.
      expect(inTerminal.map((fd) => fd.split(' ')[0]), terminal.output).toEqual(['0', '1', '2', '255']);
      for (const fd of inTerminal) expect(fd, terminal.output).toMatch(/^\d+ \/dev\/pts\/\d+$/);
    } finally {
      terminal.close();
      watching.abort();
      await watch.return(undefined).catch(() => undefined);
      await other;
    }
  });

  it("gives the learner no way to the host's Docker engine", async () => {
    for (const attempt of [
      'test -e /var/run/docker.sock',
      'curl -sS -m 3 --unix-socket /var/run/docker.sock http://docker/_ping',
      'docker -H unix:///var/run/docker.sock version',
      `curl -sS -m 3 http://${gateway}:2375/_ping`,
      `curl -sS -m 3 -k https://${gateway}:2376/_ping`,
    ]) {
      const result = await exec(A, attempt);
      expect(result.exit_code, `${attempt}: ${result.stdout}`).not.toBe(0);
    }
    // The engine the learner does reach is the session's own rootless one.
    const inner = await exec(A, "docker info --format '{{.ID}} {{.SecurityOptions}}'");
    const host = await testDocker.info();
    expect(inner.stdout).toContain('rootless');
    expect(inner.stdout.split(' ')[0]).not.toBe(host.ID);
  });

  it('keeps another session out of reach: its network, its ports, its agent, its files', async () => {
    const direct = await exec(A, `curl -sS -m 3 http://${addressOfB}:8080/`);
    expect(direct.exit_code).not.toBe(0);
    expect(direct.stdout).not.toContain(SECRET_OF_B);
    const fromInner = await getFromInner(addressOfB, 8080);
    expect(fromInner.stdout).not.toContain(SECRET_OF_B);
    expect((await exec(A, 'cat /proc/self/mountinfo')).stdout).not.toContain(B);
    const files = await exec(A, `cat /workspace/b.txt; grep -rs ${SECRET_OF_B} /workspace /tmp /home/learner/.local/share/docker/volumes; true`);
    expect(files.stdout).not.toContain(SECRET_OF_B);
  });

  it("gives neither the learner nor an inner container a way to the controller's port", async () => {
    // Every address of the host a session could route to: the sessions network's gateway and the host's own.
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    const targets = [...new Set([gateway, ...hostAddresses])];
    // The port is open on those addresses: the host itself is answered there.
    const fromHost = await fetch(`http://${gateway}:${ctl.port}/health`).then((r) => r.status, (e: unknown) => String(e));
    expect(fromHost, `the controller does not answer the host at ${gateway}:${ctl.port}`).toBe(200);
    // And the host's other ports are reachable from a session and its inner containers: only the controller's is refused.
    const other = http.createServer((_req, res) => res.end('other service\n'));
    other.listen(0, '0.0.0.0');
    await once(other, 'listening');
    try {
      const { port } = other.address() as AddressInfo;
      expect((await exec(A, `curl -sS -m 5 http://${gateway}:${port}/`)).stdout).toBe('other service\n');
      expect((await getFromInner(gateway, port)).stdout).toContain('other service\n');
    } finally {
      other.close();
    }
    for (const address of targets) {
      const health = `http://${address}:${ctl.port}/health`;
      const asLearner = await exec(A, `id -u; curl -sS -m 3 ${health}`);
      expect(asLearner.stdout.split('\n')[0], 'exec runs as the learner').toBe('1000');
      expect(asLearner.exit_code, `the learner reached the controller at ${health}: ${asLearner.stdout}`).not.toBe(0);
      expect(asLearner.stdout).not.toContain('healthy');
      // A bare TCP connection with a hand-written request, as a learner without curl would try.
      const script = `exec 3<>/dev/tcp/${address}/${ctl.port} || exit 9; printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3; timeout 3 cat <&3; true`;
      const raw = await ctl.exec(A, ['bash', '-c', script], { timeoutSeconds: 30 });
      expect(raw.stdout, `a raw connection to ${address}:${ctl.port} got an answer`).not.toMatch(/HTTP\/1|healthy/);
      const fromInner = await getFromInner(address, ctl.port, '/health');
      expect(fromInner.stdout, `an inner container reached the controller at ${health}`).not.toMatch(/HTTP\/1|healthy/);
    }
    // The controller saw the attempts and refused them itself (no firewall rule did it).
    expect(await ctl.logTail(100_000)).toContain('refused a connection from the sessions network');
    expect(await ctl.client.health()).toMatchObject({ status: 'healthy' });
  });

  it("keeps inner containers away from the agent's socket and token", async () => {
    for (const attempt of [
      'docker run --rm -v /run/runner:/r runner-busybox:latest ls /r',
      'docker run --rm -v /:/host runner-busybox:latest cat /host/run/runner/token',
      'docker run --rm --privileged -v /:/host runner-busybox:latest cat /host/run/runner/token',
      'docker run --rm --pid=host runner-busybox:latest sh -c "cat /proc/*/environ" | grep -a AGENT_',
    ]) {
      const result = await exec(A, attempt);
      expect(result.exit_code, `${attempt}: ${result.stdout}`).not.toBe(0);
    }
    // The agent has no TCP listener an inner container could connect to: only Docker's DNS listens on TCP.
    const listeners = await exec(A, "awk '$4 == \"0A\" { print $2 }' /proc/net/tcp /proc/net/tcp6");
    const addresses = listeners.stdout.trim().split('\n').filter(Boolean);
    // 0B00007F is 127.0.0.11, Docker's embedded DNS server.
    expect(addresses.every((address) => address.startsWith('0B00007F:'))).toBe(true);
  });
});
