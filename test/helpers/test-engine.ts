import type Docker from 'dockerode';
import { createDockerClient } from '../../core/docker/docker-client.js';
import { findRemappedRoot, type EngineInfo, type RemappedRoot } from '../../controller/runtime/userns.js';

/** The engine the tests use: DOCKER_HOST when set (a second engine, e.g. a remapped one), else the host's socket. */
export const TEST_DOCKER_HOST = process.env.DOCKER_HOST || undefined;

/** DOCKER_HOST for a configuration the tests parse (a controller's, an agent's), empty for the default engine. */
export const TEST_DOCKER_ENV: Record<string, string> = TEST_DOCKER_HOST ? { DOCKER_HOST: TEST_DOCKER_HOST } : {};

export const testDocker: Docker = createDockerClient(TEST_DOCKER_HOST);

let remappedRoot: Promise<RemappedRoot | null> | undefined;

/** The test engine's remapped root (`dockerd --userns-remap`), or null when it does not remap. */
export function testEngineRemappedRoot(): Promise<RemappedRoot | null> {
  remappedRoot ??= testDocker.info().then((info: EngineInfo) => findRemappedRoot(info));
  return remappedRoot;
}
