import type Docker from 'dockerode';
import { Label } from './labels.js';
import type { RuntimeSession, RuntimeVolume } from './session-runtime.js';

/*
 * What the Docker runtime reads of the engine's answers (`docker inspect`, the container and volume lists, the
 * network), as pure functions: unit-tested against answers recorded from a real engine.
 */

/** The bridge option that, set to 'false', keeps the containers of one network from reaching each other. */
export const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

/** The parts of `docker network inspect` the runtime reads. */
export interface NetworkInfo {
  Options?: Record<string, string>;
  IPAM?: { Config?: { Subnet?: string }[] };
}

/** A session as `docker inspect` of its container shows it; `network` is the sessions network. */
export function sessionOfContainer(info: Docker.ContainerInspectInfo, network: string): RuntimeSession {
  const labels = info.Config.Labels ?? {};
  return {
    sessionId: labels[Label.sessionId] ?? '',
    ...poolIdOf(labels),
    containerName: info.Name.replace(/^\//, ''),
    state: stateOf(info.State.Status),
    address: info.NetworkSettings.Networks?.[network]?.IPAddress || null,
    createdAt: dateOf(labels[Label.createdAt]),
    expiresAt: dateOf(labels[Label.expiresAt]),
  };
}

/** A session as an entry of `docker ps -a` (the container list) shows it. */
export function sessionOfListedContainer(entry: Docker.ContainerInfo, network: string): RuntimeSession {
  return {
    sessionId: entry.Labels[Label.sessionId] ?? '',
    ...poolIdOf(entry.Labels),
    containerName: (entry.Names[0] ?? entry.Id).replace(/^\//, ''),
    state: stateOf(entry.State),
    address: entry.NetworkSettings?.Networks?.[network]?.IPAddress || null,
    createdAt: dateOf(entry.Labels[Label.createdAt]),
    expiresAt: dateOf(entry.Labels[Label.expiresAt]),
  };
}

/** A session's volume as an entry of the volume list shows it. */
export function volumeOfListed(volume: Docker.VolumeInspectInfo): RuntimeVolume {
  return { name: volume.Name, sessionId: volume.Labels?.[Label.sessionId] ?? '', ...poolIdOf(volume.Labels) };
}

/** The network's address ranges (CIDR); none for a network that does not exist. */
export function subnetsOf(info: NetworkInfo | null): string[] {
  return (info?.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => typeof s === 'string' && s.length > 0);
}

/** Whether containers on the network cannot reach each other (the bridge's inter-container traffic is off). */
export function isolatesContainers(info: NetworkInfo): boolean {
  return info.Options?.[ICC_OPTION] === 'false';
}

/** Docker's container status as a session state: exited, dead, paused and removing all count as stopped. */
export function stateOf(status: string): RuntimeSession['state'] {
  if (status === 'running' || status === 'restarting' || status === 'created') return status;
  return 'stopped';
}

function poolIdOf(labels: Record<string, string> | null | undefined): { poolId?: string } {
  const poolId = labels?.[Label.poolId];
  return poolId ? { poolId } : {};
}

function dateOf(value: string | undefined): Date | null {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}
