import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';

/** The chain of the runner's own, jumped to from INPUT, that holds every sessions bridge's rules. */
export const HOST_GUARD_CHAIN = 'RUNNER-HOST-GUARD';

/** Runs iptables with these arguments and resolves with its output; rejects when it exits non-zero. */
export type RunIptables = (args: string[]) => Promise<string>;

const execIptables: RunIptables = async (args) => (await promisify(execFile)('iptables', ['-w', ...args])).stdout;

/**
 * The rules that keep sessions away from every service of the host. A packet a session (or an inner container,
 * whose traffic leaves through its session) sends to any of the host's own addresses, the bridge's gateway
 * included, arrives on the sessions bridge and goes through INPUT; traffic to anywhere else is forwarded and never
 * sees these. Let through: replies to connections the host opened (the controller reaching a session's ports), and
 * DNS to the host's resolvers (Docker's embedded DNS answers inside the session and asks them from there).
 */
export function hostGuardRules(bridge: string, resolvers: readonly string[]): string[][] {
  const from = ['-i', bridge];
  return [
    [...from, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'RETURN'],
    // Spelled as `iptables -S` prints them back, so that a re-check compares equal strings.
    ...resolvers.flatMap((ip) => ['udp', 'tcp'].map((proto) => ['-d', `${ip}/32`, ...from, '-p', proto, '-m', proto, '--dport', '53', '-j', 'RETURN'])),
    // A reset, so that a connection attempt is refused at once rather than timing out.
    [...from, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
    [...from, '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'],
  ];
}

/** The IPv4 nameservers of a resolv.conf (loopback ones are the host's own stub and unreachable from a bridge). */
export function parseResolvers(text: string): string[] {
  const found = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
  return [...new Set(found.filter((ip) => isIPv4(ip) && !ip.startsWith('127.')))];
}

/**
 * Installs and re-checks the host guard for a sessions bridge: idempotent, cheap when the rules are in place (one
 * `iptables -S`), and rebuilds this bridge's rules in order when any is missing. Rules of bridges that no longer
 * exist (a removed network) are dropped on the way.
 */
export class HostGuard {
  constructor(
    private readonly run: RunIptables = execIptables,
    private readonly resolvConf = '/etc/resolv.conf',
    private readonly interfaceExists: (name: string) => Promise<boolean> = existsInterface,
  ) {}

  async protect(bridge: string): Promise<void> {
    const resolvers = parseResolvers(await readFile(this.resolvConf, 'utf8').catch(() => ''));
    const wanted = hostGuardRules(bridge, resolvers).map((rule) => ['-A', HOST_GUARD_CHAIN, ...rule].join(' '));
    let current = await this.#listChain();
    if (current === null) {
      await this.run(['-N', HOST_GUARD_CHAIN]).catch(() => undefined); // another controller may have made it just now
      current = [];
    }
    // Jumped to first, before anything that could accept the packet.
    const jump = ['INPUT', '-j', HOST_GUARD_CHAIN];
    if (!(await this.run(['-C', ...jump]).then(() => true, () => false))) await this.run(['-I', 'INPUT', '1', '-j', HOST_GUARD_CHAIN]);

    for (const line of current) {
      const iface = /-i (\S+)/.exec(line)?.[1];
      if (iface && iface !== bridge && !(await this.interfaceExists(iface))) await this.#delete(line);
    }
    const mine = current.filter((line) => line.includes(`-i ${bridge} `));
    if (mine.length === wanted.length && mine.every((line, i) => line === wanted[i])) return;
    for (const line of mine) await this.#delete(line);
    for (const rule of wanted) await this.run(rule.split(' '));
  }

  /** The chain's rules as `iptables -S` prints them (`-A CHAIN …`), or null when the chain does not exist. */
  async #listChain(): Promise<string[] | null> {
    try {
      const out = await this.run(['-S', HOST_GUARD_CHAIN]);
      return out.split('\n').filter((line) => line.startsWith('-A '));
    } catch {
      return null;
    }
  }

  async #delete(line: string): Promise<void> {
    await this.run(['-D', ...line.split(' ').slice(1)]).catch(() => undefined);
  }
}

async function existsInterface(name: string): Promise<boolean> {
  return access(`/sys/class/net/${name}`).then(() => true, () => false);
}
