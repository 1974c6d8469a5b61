import { createHash } from 'node:crypto';
import type { SessionOwner } from '../session-runtime.js';

// A DNS-1123 label: what a pod's name may be and still be its hostname, and what a Secret's name may always be.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_NAME = 63;
// Room for `-agent` on the Secret beside the pod.
const MAX_POD_NAME = MAX_NAME - '-agent'.length;

/**
 * The pod name of a container name. Names Kubernetes accepts as they are stay as they are; others (an `_`, a
 * trailing `-`, a `.` of a pool member, too long) get a readable stem and a hash of the whole, so two container
 * names never share a pod.
 */
export function podName(containerName: string): string {
  if (DNS_LABEL.test(containerName) && containerName.length <= MAX_POD_NAME) return containerName;
  const hash = createHash('sha256').update(containerName).digest('hex').slice(0, 10);
  const stem = containerName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, MAX_POD_NAME - hash.length - 1)
    .replace(/^-+|-+$/g, '');
  return stem ? `${stem}-${hash}` : hash;
}

/** The Secret that holds an owner's agent token and the state the controller keeps for it. */
export function secretName(owner: SessionOwner): string {
  return `${podName(owner.kind === 'pool' ? `pool-${owner.poolId}` : `session-${owner.sessionId}`)}-agent`;
}
