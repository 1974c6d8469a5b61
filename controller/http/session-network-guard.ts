import { BlockList, isIP, type Server, type Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';

/**
 * Keeps sessions away from the controller's own port. A controller listening on 0.0.0.0 is reachable from every
 * session at the sessions network's gateway (and at any other address of the host): a learner's process or an inner
 * container (whose traffic leaves through its session's address) could then talk to the API. Every TCP connection
 * whose peer is inside the sessions network's subnets is destroyed the moment it is accepted, before a byte of
 * HTTP is read; so no route, token check or parser ever sees it. Works without iptables and without privileges.
 */
export class SessionNetworkGuard {
  #blocked = new BlockList();
  #subnets: readonly string[] = [];
  #refused = 0;

  constructor(private readonly log?: FastifyBaseLogger) {}

  /** The subnets (CIDR, IPv4 or IPv6) sessions connect from; replaces the previous ones. Invalid entries are skipped. */
  update(subnets: readonly string[]): void {
    const valid = subnets.filter((cidr) => parseCidr(cidr) !== null);
    if (sameSet(valid, this.#subnets)) return;
    const blocked = new BlockList();
    for (const cidr of valid) {
      const { address, prefix, family } = parseCidr(cidr)!;
      blocked.addSubnet(address, prefix, family);
    }
    // Swapped whole, so that a connection is always checked against one consistent list.
    this.#blocked = blocked;
    this.#subnets = valid;
    this.log?.info({ subnets: valid }, 'refusing connections from the sessions network');
  }

  get subnets(): readonly string[] {
    return this.#subnets;
  }

  /** Connections refused so far. */
  get refused(): number {
    return this.#refused;
  }

  /** Whether a peer address (as `socket.remoteAddress` gives it; IPv4-mapped IPv6 included) is a session's. */
  blocks(address: string | undefined): boolean {
    if (!address) return false;
    const family = isIP(address);
    if (family === 0) return false;
    return this.#blocked.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** Destroys every connection from a session as `server` accepts it, ahead of the HTTP server's own listener. */
  protect(server: Server): void {
    server.prependListener('connection', (socket: Socket) => {
      if (!this.blocks(socket.remoteAddress)) return;
      this.#refused += 1;
      // Once per burst is enough to notice a learner knocking; the count says how often.
      if (this.#refused === 1 || this.#refused % 100 === 0) {
        this.log?.warn({ remoteAddress: socket.remoteAddress, refused: this.#refused }, 'refused a connection from the sessions network');
      }
      socket.destroy();
    });
  }
}

/** `172.18.0.0/16` or `fd00::/64` as BlockList wants it; null for anything else. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (!match) return null;
  const [, address = '', bits = ''] = match;
  const version = isIP(address);
  const prefix = Number(bits);
  if (version === 0 || prefix > (version === 4 ? 32 : 128)) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
