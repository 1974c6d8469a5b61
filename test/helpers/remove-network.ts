import type Docker from 'dockerode';

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
