import { readdir, rm } from 'node:fs/promises';
import type Docker from 'dockerode';
import { Label, MANAGED_BY } from '../../controller/runtime/labels.js';
import { testDocker } from './test-engine.js';

/**
 * Removes a network a test made. One the engine refuses to remove is reported on stderr, not hidden: Docker 20.10
 * sometimes keeps counting the endpoints of containers already removed and then answers "has active endpoints" with
 * none attached (moby/moby#43286) until it restarts; the next run's sweep removes the network after that.
 */
export async function removeNetwork(docker: Docker, idOrName: string, name = idOrName): Promise<void> {
  await docker
    .getNetwork(idOrName)
    .remove()
    .catch((error: { statusCode?: number; message?: string }) => {
      if (error.statusCode !== 404) console.warn(`network ${name} was not removed: ${error.message ?? String(error)}`);
    });
}

/** Removes every container, volume and network labelled with a controller instance, and the network of that name. */
export async function removeInstance(docker: Docker, instance: string, network: string): Promise<void> {
  const label = `${Label.instance}=${instance}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } }).catch(() => []);
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  const { Volumes } = await docker.listVolumes({ filters: { label: [label] } }).catch(() => ({ Volumes: [] }));
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => {})));
  // By id: a racing create can leave several networks of one name, which the name alone cannot remove.
  const networks = await docker.listNetworks({ filters: { label: [label] } }).catch(() => []);
  if (networks.length === 0) await removeNetwork(docker, network);
  await Promise.all(networks.map((n) => removeNetwork(docker, n.Id, n.Name)));
}

export interface RunNames {
  /** Instance labels of this kind of run are `<instancePrefix><pid>-<n>`. */
  instancePrefix: string;
  /** Its networks are `<namePrefix><pid>-<n>`, its folders `/tmp/<namePrefix><pid>-…`. */
  namePrefix: string;
}

/** Removes what earlier runs of one kind left behind when they crashed (their process is gone). */
export async function sweepStaleRuns({ instancePrefix, namePrefix }: RunNames, docker: Docker = testDocker): Promise<void> {
  const stale = (instance: string | undefined): instance is string => {
    const pid = Number(instance?.slice(instancePrefix.length).split('-')[0]);
    return instance?.startsWith(instancePrefix) === true && pid !== process.pid && !isAlive(pid);
  };
  const managed = { label: [`${Label.managedBy}=${MANAGED_BY}`] };
  const instances = new Set<string>();
  for (const c of await docker.listContainers({ all: true, filters: managed })) if (stale(c.Labels[Label.instance])) instances.add(c.Labels[Label.instance]!);
  for (const v of (await docker.listVolumes({ filters: managed })).Volumes ?? []) if (stale(v.Labels?.[Label.instance])) instances.add(v.Labels[Label.instance]!);
  for (const n of await docker.listNetworks({ filters: managed })) if (stale(n.Labels?.[Label.instance])) instances.add(n.Labels![Label.instance]!);
  for (const instance of instances) await removeInstance(docker, instance, `${namePrefix}${instance.slice(instancePrefix.length)}`);
  for (const name of await readdir('/tmp')) {
    const pid = Number(name.slice(namePrefix.length).split('-')[0]);
    if (name.startsWith(namePrefix) && pid !== process.pid && !isAlive(pid)) await rm(`/tmp/${name}`, { recursive: true, force: true });
  }
}

/** Whether a process with this pid still runs (a crashed earlier run's leftovers are swept when not). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
