import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCidr, SessionNetworkGuard } from '../../../../controller/http/session-network-guard.js';

describe('session network guard: which peers are sessions', () => {
  const guard = new SessionNetworkGuard();
  guard.update(['172.30.0.0/16', 'fd00:abcd::/64']);

  it.each([
    ['172.30.0.1', true],
    ['172.30.255.254', true],
    ['::ffff:172.30.0.5', true],
    ['::ffff:ac1e:0005', true],
    ['::FFFF:172.30.9.9', true],
    ['fd00:abcd::5', true],
    ['fd00:abcd:0:0:ffff::1', true],
    ['172.31.0.1', false],
    ['172.29.255.255', false],
    ['::ffff:172.31.0.1', false],
    ['127.0.0.1', false],
    ['::1', false],
    ['10.0.0.1', false],
    ['fd00:abce::1', false],
    ['', false],
    [undefined, false],
    ['not-an-address', false],
  ])('%s from the sessions network: %s', (address, blocked) => {
    expect(guard.blocks(address)).toBe(blocked);
  });

  it('forgets the old subnets when the network is made again with new ones', () => {
    const renewed = new SessionNetworkGuard();
    renewed.update(['172.30.0.0/16']);
    renewed.update(['10.99.0.0/24']);
    expect(renewed.blocks('172.30.0.1')).toBe(false);
    expect(renewed.blocks('10.99.0.7')).toBe(true);
    expect(renewed.subnets).toEqual(['10.99.0.0/24']);
  });

  it('skips what is not a subnet and blocks nothing while it knows none', () => {
    const empty = new SessionNetworkGuard();
    empty.update(['', 'garbage', '10.0.0.0/33', '1.2.3.4', 'fd00::/129']);
    expect(empty.subnets).toEqual([]);
    expect(empty.blocks('10.0.0.1')).toBe(false);
  });

  it.each([
    ['172.18.0.0/16', { address: '172.18.0.0', prefix: 16, family: 'ipv4' }],
    ['fd00::/64', { address: 'fd00::', prefix: 64, family: 'ipv6' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['172.18.0.0', null],
    ['172.18.0.0/', null],
    ['300.1.1.1/8', null],
  ])('reads %s', (cidr, parsed) => {
    expect(parseCidr(cidr)).toEqual(parsed);
  });
});

describe('session network guard on a listening server', () => {
  let app: FastifyInstance | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  // A server on loopback stands in for the controller; blocking 127.0.0.0/8 makes the test client a "session".
  async function serve(subnets: string[]): Promise<{ port: number; guard: SessionNetworkGuard; requests: () => number }> {
    let requests = 0;
    app = Fastify();
    const guard = new SessionNetworkGuard();
    guard.update(subnets);
    guard.protect(app.server);
    app.addHook('onRequest', async () => {
      requests += 1;
    });
    app.get('/health', async () => ({ status: 'healthy' }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    return { port: (app.server.address() as AddressInfo).port, guard, requests: () => requests };
  }

  function get(port: number): Promise<{ status: number } | { error: string }> {
    return new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      });
      request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    });
  }

  it('closes a connection from the sessions network before any request is read', async () => {
    const { port, guard, requests } = await serve(['127.0.0.0/8']);
    const answer = await get(port);
    expect(answer).toEqual({ error: expect.stringMatching(/ECONNRESET|EPIPE|socket hang up/) });
    expect(requests()).toBe(0);
    expect(guard.refused).toBe(1);
  });

  it('answers everyone else as before', async () => {
    const { port, guard } = await serve(['172.30.0.0/16']);
    expect(await get(port)).toEqual({ status: 200 });
    expect(guard.refused).toBe(0);
  });

  it('keeps serving after refusing many connections', async () => {
    const { port, guard } = await serve(['127.0.0.0/8']);
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(port)));
    expect(answers.every((a) => 'error' in a)).toBe(true);
    guard.update([]);
    expect(await get(port)).toEqual({ status: 200 });
    expect(app!.server.listening).toBe(true);
  });
});
