import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import {
  isolatesContainers,
  ownerLabel,
  ownerOf,
  sessionOfContainer,
  sessionOfListedContainer,
  stateOf,
  subnetsOf,
  volumeOfListed,
  type NetworkInfo,
} from '../../../../controller/runtime/docker-inspect.js';
import { Label } from '../../../../controller/runtime/labels.js';

// Answers of a real engine about a real controller's sessions (test/fixtures/docker/record.ts made them).
const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../../../fixtures/docker/${name}.json`, import.meta.url), 'utf8')) as T;
const running = fixture<Docker.ContainerInspectInfo>('container-running');
const stopped = fixture<Docker.ContainerInspectInfo>('container-stopped');
const restarting = fixture<Docker.ContainerInspectInfo>('container-restarting');
const poolMember = fixture<Docker.ContainerInspectInfo>('container-pool-member');
const listed = fixture<Docker.ContainerInfo[]>('container-list');
const volumes = fixture<{ Volumes: Docker.VolumeInspectInfo[] }>('volume-list').Volumes;
const network = fixture<NetworkInfo & { Name: string }>('network');
const NETWORK = network.Name;

describe('a session container as docker inspect shows it', () => {
  it('reads a running session: its id, name, address on the sessions network and times from its labels', () => {
    expect(sessionOfContainer(running, NETWORK)).toEqual({
      owner: { kind: 'session', sessionId: 'running' },
      containerName: 'rtfix-running',
      state: 'running',
      address: '192.168.32.3',
      createdAt: new Date('2026-12-03T07:24:16.292Z'),
      expiresAt: new Date('2026-12-03T07:54:16.292Z'),
    });
  });

  it('reads a stopped session as stopped, without an address', () => {
    expect(sessionOfContainer(stopped, NETWORK)).toMatchObject({ owner: { kind: 'session', sessionId: 'stopped' }, containerName: 'rtfix-stopped', state: 'stopped', address: null });
  });

  it('reads a claimed pool member Docker is restarting: restarting, its pool id, no session id or expiry in its labels', () => {
    expect(restarting.State).toMatchObject({ Restarting: true, ExitCode: 137 });
    expect(sessionOfContainer(restarting, NETWORK)).toEqual({
      owner: { kind: 'pool', poolId: '53e47dac67bd' },
      containerName: 'rtfix-restarting',
      state: 'restarting',
      address: null,
      createdAt: new Date('2026-12-03T07:24:16.162Z'),
      expiresAt: null,
    });
  });

  it('reads a warm pool member waiting for a session', () => {
    expect(sessionOfContainer(poolMember, NETWORK)).toEqual({
      owner: { kind: 'pool', poolId: '782587edc86f' },
      containerName: 'rtfix-warm.782587edc86f',
      state: 'running',
      address: '192.168.32.5',
      createdAt: new Date('2026-12-03T07:24:24.396Z'),
      expiresAt: null,
    });
  });

  it('has no address on a network the container is not on', () => {
    expect(sessionOfContainer(running, 'another-network').address).toBeNull();
  });

  it('reads no owner from a container labelled by neither a session nor a pool id (one made by hand)', () => {
    const { [Label.sessionId]: _id, ...labels } = running.Config.Labels;
    expect(sessionOfContainer({ ...running, Config: { ...running.Config, Labels: labels } }, NETWORK).owner).toBeNull();
  });

  it('reads no date from a label that is not one', () => {
    const labels = { ...running.Config.Labels, 'io.runner.expires-at': 'soon' };
    expect(sessionOfContainer({ ...running, Config: { ...running.Config, Labels: labels } }, NETWORK).expiresAt).toBeNull();
  });
});

describe('the container and volume lists', () => {
  it('reads every listed container as inspecting it does', () => {
    const byName = new Map([running, stopped, restarting, poolMember].map((info) => [info.Name.slice(1), sessionOfContainer(info, NETWORK)]));
    const fromList = listed.map((entry) => sessionOfListedContainer(entry, NETWORK)!);
    expect(fromList.map((s) => s.containerName).sort()).toEqual([...byName.keys()].sort());
    for (const session of fromList) expect(session).toEqual(byName.get(session.containerName));
  });

  it('skips a listed container whose labels name no owner', () => {
    const { [Label.sessionId]: _session, [Label.poolId]: _pool, ...labels } = listed[0]!.Labels;
    expect(sessionOfListedContainer({ ...listed[0]!, Labels: labels }, NETWORK)).toBeNull();
  });

  it("reads each volume's owner: a session id, or a pool member's id", () => {
    const read = volumes.map((v) => volumeOfListed(v)!).sort((a, b) => a.name.localeCompare(b.name));
    const session = (sessionId: string) => ({ kind: 'session', sessionId });
    const pool = (poolId: string) => ({ kind: 'pool', poolId });
    expect(read).toEqual([
      { name: 'rtfix-running-docker', owner: session('running') },
      { name: 'rtfix-running-workspace', owner: session('running') },
      { name: 'rtfix-stopped-docker', owner: session('stopped') },
      { name: 'rtfix-stopped-workspace', owner: session('stopped') },
      { name: 'rtfix-warm.53e47dac67bd-docker', owner: pool('53e47dac67bd') },
      { name: 'rtfix-warm.53e47dac67bd-workspace', owner: pool('53e47dac67bd') },
      { name: 'rtfix-warm.782587edc86f-docker', owner: pool('782587edc86f') },
      { name: 'rtfix-warm.782587edc86f-workspace', owner: pool('782587edc86f') },
    ]);
  });

  it('names each owner by the one label it reads back', () => {
    for (const info of [running, restarting]) {
      const owner = ownerOf(info.Config.Labels)!;
      const [key, value] = ownerLabel(owner);
      expect(info.Config.Labels[key]).toBe(value);
    }
  });
});

describe('the sessions network', () => {
  it('reads its address range', () => {
    expect(subnetsOf(network)).toEqual(['192.168.32.0/20']);
  });

  it('reads no range of a network that does not exist', () => {
    expect(subnetsOf(null)).toEqual([]);
  });

  it('keeps its containers apart, and a network without the option does not', () => {
    expect(isolatesContainers(network)).toBe(true);
    expect(isolatesContainers({ ...network, Options: {} })).toBe(false);
    expect(isolatesContainers({ ...network, Options: { 'com.docker.network.bridge.enable_icc': 'true' } })).toBe(false);
  });
});

describe("Docker's container states", () => {
  // Paused, dead and removing containers could not be recorded from a controller's sessions: the table covers them.
  it.each([
    ['created', 'created'],
    ['running', 'running'],
    ['restarting', 'restarting'],
    ['paused', 'stopped'],
    ['exited', 'stopped'],
    ['dead', 'stopped'],
    ['removing', 'stopped'],
  ] as const)('reads %s as %s', (status, state) => {
    expect(stateOf(status)).toBe(state);
  });
});
