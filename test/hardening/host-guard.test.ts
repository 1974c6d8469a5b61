import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_GUARD_CHAIN } from '../../controller/runtime/host-guard.js';
import { buildImages } from '../helpers/controller-e2e.js';
import type { ControllerProcess } from '../helpers/controller-process.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * A service on the host, listening on every address (0.0.0.0), is out of reach of a session: of a learner's
 * process and of an inner container, at every address of the host and at the sessions network's gateway. The
 * controller's iptables chain does it; a second controller with the guard off shows the same probe does connect.
 */

const run = promisify(execFile);
const GUARDED = 'guarded';
const OPEN = 'open';

// A learner's probe: prints `connected` or `refused` for one address (python: curl would need an HTTP answer).
const probe = (host: string, port: number): string =>
  `python3 -c "import socket,sys
try:
    socket.create_connection(('${host}', ${port}), timeout=5); print('connected')
except OSError as e:
    print('refused', e)"`;

// An inner container's probe: its input stays open a second, as nc quits at its end before the answer comes.
const innerProbe = (host: string, port: number): string[] => ['sh', '-c', `sleep 1 | docker run -i --rm runner-busybox:latest nc -w 5 ${host} ${port}`];

async function iptablesRules(chain: string): Promise<string[]> {
  return (await run('iptables', ['-w', '-S', chain])).stdout.split('\n').filter((line) => line.startsWith('-A '));
}

async function bridgeOf(ctl: ControllerProcess): Promise<{ bridge: string; gateway: string }> {
  const info = await ctl.docker.getNetwork(ctl.network).inspect();
  return { bridge: `br-${(info.Id as string).slice(0, 12)}`, gateway: info.IPAM?.Config?.[0]?.Gateway ?? '' };
}

describe.sequential("sessions and the host's services", () => {
  const guarded = hardeningController({ host: '0.0.0.0' });
  const open = hardeningController({ host: '0.0.0.0', env: { SESSION_HOST_GUARD: 'false' } });
  const server = net.createServer((socket) => {
    socket.on('error', () => {}); // a probe that connected hangs up at once
    socket.end('hello from the host\n');
  });
  let port = 0;
  let targets: string[] = [];

  beforeAll(async () => {
    await buildImages();
    await sweepHardeningLeftovers();
    server.listen(0, '0.0.0.0');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
    await guarded.start();
    await guarded.createSession(GUARDED);
    await open.start();
    await open.createSession(OPEN);
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    targets = [...new Set([(await bridgeOf(guarded)).gateway, ...hostAddresses])];
  });

  afterAll(async () => {
    const { bridge } = await bridgeOf(guarded).catch(() => ({ bridge: '' }));
    await guarded.destroy();
    await open.destroy();
    server.close();
    // The rules of a bridge that is gone are dropped by the next controller anyway; a test leaves none behind.
    for (const rule of bridge ? await iptablesRules(HOST_GUARD_CHAIN) : []) {
      if (rule.includes(`-i ${bridge} `)) await run('iptables', ['-w', '-D', ...rule.split(' ').slice(1)]);
    }
  });

  it('refuses a learner process at every host address and at the gateway', async () => {
    expect(targets.length).toBeGreaterThan(1);
    for (const host of targets) {
      const answer = await guarded.exec(GUARDED, probe(host, port), { timeoutSeconds: 60 });
      expect(answer.logs.join(''), host).toMatch(/^refused/);
    }
  });

  it('refuses an inner container of the session at every host address and at the gateway', async () => {
    for (const host of targets) {
      const answer = await guarded.exec(GUARDED, innerProbe(host, port), { timeoutSeconds: 120 });
      expect(answer.exit_code, host).not.toBe(0);
      expect(answer.logs.join(''), host).not.toContain('hello from the host');
    }
  });

  it('connects without the guard: the probes above can tell', async () => {
    const answer = await open.exec(OPEN, probe((await bridgeOf(open)).gateway, port), { timeoutSeconds: 60 });
    expect(answer.logs.join('')).toMatch(/^connected/);
    const inner = await open.exec(OPEN, innerProbe(targets[1]!, port), { timeoutSeconds: 120 });
    expect(inner.logs.join('')).toContain('hello from the host');
  });

  it('lets replies and DNS to the host resolvers through, jumped to first from INPUT, and touches no forwarded traffic', async () => {
    const { bridge } = await bridgeOf(guarded);
    const input = await iptablesRules('INPUT');
    expect(input[0]).toBe(`-A INPUT -j ${HOST_GUARD_CHAIN}`);
    const mine = (await iptablesRules(HOST_GUARD_CHAIN)).filter((rule) => rule.includes(`-i ${bridge} `));
    const resolvers = [...(await run('cat', ['/etc/resolv.conf'])).stdout.matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)/gm)].map((m) => m[1]!).filter((ip) => !ip.startsWith('127.'));
    expect(mine[0]).toBe(`-A ${HOST_GUARD_CHAIN} -i ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
    for (const ip of resolvers) {
      for (const proto of ['udp', 'tcp']) expect(mine).toContain(`-A ${HOST_GUARD_CHAIN} -d ${ip}/32 -i ${bridge} -p ${proto} -m ${proto} --dport 53 -j RETURN`);
    }
    // The rejects come last: nothing of this bridge is rejected before the exceptions.
    expect(mine.slice(-2)).toEqual([
      `-A ${HOST_GUARD_CHAIN} -i ${bridge} -p tcp -j REJECT --reject-with tcp-reset`,
      `-A ${HOST_GUARD_CHAIN} -i ${bridge} -j REJECT --reject-with icmp-port-unreachable`,
    ]);
    // Outbound traffic is forwarded, never through INPUT: the runner adds nothing to FORWARD.
    expect((await iptablesRules('FORWARD')).some((rule) => rule.includes(HOST_GUARD_CHAIN))).toBe(false);
  });

  it('puts lost rules back when the controller reconciles (a restart)', async () => {
    const { bridge } = await bridgeOf(guarded);
    for (const rule of await iptablesRules(HOST_GUARD_CHAIN)) {
      if (rule.includes(`-i ${bridge} `)) await run('iptables', ['-w', '-D', ...rule.split(' ').slice(1)]);
    }
    const lost = await guarded.exec(GUARDED, probe(targets[0]!, port), { timeoutSeconds: 60 });
    expect(lost.logs.join('')).toMatch(/^connected/);
    await guarded.restart();
    const answer = await guarded.exec(GUARDED, probe(targets[0]!, port), { timeoutSeconds: 60 });
    expect(answer.logs.join('')).toMatch(/^refused/);
  });
});
