import Docker from 'dockerode';

/** A dockerode client for a DOCKER_HOST value (`unix:///path` or `tcp://host:port`); the default socket when unset. */
export function createDockerClient(dockerHost: string | undefined): Docker {
  if (!dockerHost) return new Docker({ socketPath: '/var/run/docker.sock' });
  const url = new URL(dockerHost);
  if (url.protocol === 'unix:') return new Docker({ socketPath: url.pathname });
  if (url.protocol === 'tcp:' || url.protocol === 'http:') {
    return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
  }
  throw new Error(`unsupported DOCKER_HOST ${dockerHost}: use unix:// or tcp://`);
}
