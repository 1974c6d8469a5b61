import Docker from 'dockerode';

/** The host's Docker engine, where the tests start sessions and look at what controllers made. */
export const hostDocker = new Docker({ socketPath: '/var/run/docker.sock' });
