import { describe, expect, it } from 'vitest';
import { parsePortSpec } from '../../../../shared/schemas/docker.js';

describe('port specs', () => {
  it.each([
    ['8080:80', { host_ip: '', host_port: '8080', container_port: 80, protocol: 'tcp' }],
    ['127.0.0.1:8081:80', { host_ip: '127.0.0.1', host_port: '8081', container_port: 80, protocol: 'tcp' }],
    ['9000:9000/udp', { host_ip: '', host_port: '9000', container_port: 9000, protocol: 'udp' }],
    ['80', { host_ip: '', host_port: '', container_port: 80, protocol: 'tcp' }],
    ['127.0.0.1::80', { host_ip: '127.0.0.1', host_port: '', container_port: 80, protocol: 'tcp' }],
    ['[::1]:8080:80/sctp', { host_ip: '::1', host_port: '8080', container_port: 80, protocol: 'sctp' }],
    ['65535:1', { host_ip: '', host_port: '65535', container_port: 1, protocol: 'tcp' }],
  ])('reads %s', (spec, expected) => {
    expect(parsePortSpec(spec)).toEqual(expected);
  });

  it.each(['', ':80', '8080:', '0:80', '80:0', '65536:80', '-1:80', '08080:80', '1.2.3:80:80', '[zz]:80:80', '80/icmp', '80:80:80:80', ' 80', '8000-8010'])(
    'refuses %j',
    (spec) => {
      expect(parsePortSpec(spec)).toBeUndefined();
    },
  );
});
