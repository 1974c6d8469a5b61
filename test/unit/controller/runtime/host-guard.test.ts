import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOST_GUARD_CHAIN, HostGuard, parseResolvers, type RunIptables } from '../../../../controller/runtime/host-guard.js';

// A tiny iptables with chains of rule lines, answering -N -S -C -A -I -D as the real one does (failing when it would).
function fakeIptables(): { run: RunIptables; chains: Map<string, string[]> } {
  const chains = new Map<string, string[]>([['INPUT', []]]);
  const run: RunIptables = async (args) => {
    const [op, chain = '', ...rest] = args;
    const rules = chains.get(chain);
    if (op === '-N') {
      if (rules) throw new Error('Chain already exists');
      chains.set(chain, []);
      return '';
    }
    if (!rules) throw new Error(`No chain ${chain}`);
    const rule = rest.join(' ');
    switch (op) {
      case '-S':
        return [`-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r}`)].join('\n') + '\n';
      case '-C':
        if (!rules.includes(rule)) throw new Error('Bad rule');
        return '';
      case '-A':
        rules.push(rule);
        return '';
      case '-I':
        rules.splice(Number(rest[0]) - 1, 0, rest.slice(1).join(' '));
        return '';
      case '-D': {
        const at = rules.indexOf(rule);
        if (at < 0) throw new Error('Bad rule');
        rules.splice(at, 1);
        return '';
      }
      default:
        throw new Error(`unknown ${op}`);
    }
  };
  return { run, chains };
}

describe('host guard rules', () => {
  let dir = '';
  let resolvConf = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'host-guard-'));
    resolvConf = join(dir, 'resolv.conf');
    await writeFile(resolvConf, 'search example\nnameserver 10.255.255.53\nnameserver 127.0.0.53\n');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('reads the IPv4 resolvers a bridge can reach, not the loopback stub', () => {
    expect(parseResolvers('nameserver 10.0.0.2\n# nameserver 10.9.9.9\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\n')).toEqual(['10.0.0.2']);
  });

  it('jumps from INPUT first and rejects everything from the bridge but replies and DNS to the resolvers', async () => {
    const { run, chains } = fakeIptables();
    chains.get('INPUT')!.push('-j ACCEPT');
    await new HostGuard(run, resolvConf, async () => true).protect('br-abc');
    expect(chains.get('INPUT')![0]).toBe(`-j ${HOST_GUARD_CHAIN}`);
    expect(chains.get(HOST_GUARD_CHAIN)).toEqual([
      '-i br-abc -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-d 10.255.255.53/32 -i br-abc -p udp -m udp --dport 53 -j RETURN',
      '-d 10.255.255.53/32 -i br-abc -p tcp -m tcp --dport 53 -j RETURN',
      '-i br-abc -p tcp -j REJECT --reject-with tcp-reset',
      '-i br-abc -j REJECT --reject-with icmp-port-unreachable',
    ]);
  });

  it('is idempotent and restores the order when a rule was deleted', async () => {
    const { run, chains } = fakeIptables();
    const guard = new HostGuard(run, resolvConf, async () => true);
    await guard.protect('br-abc');
    const installed = [...chains.get(HOST_GUARD_CHAIN)!];
    await guard.protect('br-abc');
    expect(chains.get(HOST_GUARD_CHAIN)).toEqual(installed);
    expect(chains.get('INPUT')!.filter((r) => r.includes(HOST_GUARD_CHAIN))).toHaveLength(1);
    chains.get(HOST_GUARD_CHAIN)!.splice(1, 1); // the DNS exception lost: a re-append would land after the REJECT
    await guard.protect('br-abc');
    expect(chains.get(HOST_GUARD_CHAIN)).toEqual(installed);
  });

  it("keeps another live bridge's rules and drops those of a bridge that is gone", async () => {
    const { run, chains } = fakeIptables();
    await new HostGuard(run, resolvConf, async () => true).protect('br-other');
    await new HostGuard(run, resolvConf, async () => true).protect('br-gone');
    await new HostGuard(run, resolvConf, async (name) => name !== 'br-gone').protect('br-abc');
    const rules = chains.get(HOST_GUARD_CHAIN)!;
    expect(rules.some((r) => r.includes('-i br-other '))).toBe(true);
    expect(rules.some((r) => r.includes('-i br-gone '))).toBe(false);
    expect(rules.filter((r) => r.includes('-i br-abc '))).toHaveLength(5);
  });
});
