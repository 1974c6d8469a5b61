import type Docker from 'dockerode';
import { Label } from './labels.js';
import type { OwnedRuntimeSession, RuntimeSession, RuntimeVolume, SessionOwner } from './session-runtime.js';

/*
 * What the Docker runtime reads of the engine's answers (`docker inspect`, the container and volume lists, the
 * network), as pure functions: unit-tested against answers recorded from a real engine.
 */

/** The bridge option that, set to 'false', keeps the containers of one network from reaching each other. */
export const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

/** The parts of `docker network inspect` the runtime reads. */
export interface NetworkInfo {
  Id?: string;
  Options?: Record<string, string>;
  IPAM?: { Config?: { Subnet?: string }[] };
}

/** A session as `docker inspect` of its container shows it; `network` is the sessions network. */
export function sessionOfContainer(info: Docker.ContainerInspectInfo, network: string): RuntimeSession {
  const labels = info.Config.Labels ?? {};
  return {
    owner: ownerOf(labels),
    containerName: info.Name.replace(/^\//, ''),
    state: stateOf(info.State.Status),
    address: info.NetworkSettings.Networks?.[network]?.IPAddress || null,
    createdAt: dateOf(labels[Label.createdAt]),
    expiresAt: dateOf(labels[Label.expiresAt]),
  };
}

/** A session as an entry of `docker ps -a` (the container list) shows it; null when its labels name no owner. */
export function sessionOfListedContainer(entry: Docker.ContainerInfo, network: string): OwnedRuntimeSession | null {
  const owner = ownerOf(entry.Labels);
  if (!owner) return null;
  return {
    owner,
    containerName: (entry.Names[0] ?? entry.Id).replace(/^\//, ''),
    state: stateOf(entry.State),
    address: entry.NetworkSettings?.Networks?.[network]?.IPAddress || null,
    createdAt: dateOf(entry.Labels[Label.createdAt]),
    expiresAt: dateOf(entry.Labels[Label.expiresAt]),
  };
}

/** A session's volume as an entry of the volume list shows it; null when its labels name no owner. */
export function volumeOfListed(volume: Docker.VolumeInspectInfo): RuntimeVolume | null {
  const owner = ownerOf(volume.Labels);
  return owner ? { name: volume.Name, owner } : null;
}

/** The one label that names a container's or volume's owner, and its value. */
export function ownerLabel(owner: SessionOwner): [string, string] {
  return owner.kind === 'pool' ? [Label.poolId, owner.poolId] : [Label.sessionId, owner.sessionId];
}

/** Whose labels these are; a pool id wins, as a claimed member's labels never name its session. */
export function ownerOf(labels: Record<string, string> | null | undefined): SessionOwner | null {
  const poolId = labels?.[Label.poolId];
  if (poolId) return { kind: 'pool', poolId };
  const sessionId = labels?.[Label.sessionId];
  return sessionId ? { kind: 'session', sessionId } : null;
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

/** A label's ISO time, or null when it is missing or not a time. */
export function dateOf(value: string | undefined): Date | null {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}
