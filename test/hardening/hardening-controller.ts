import type Docker from 'dockerode';
import { ControllerProcess } from '../helpers/controller-process.js';
import { sweepStaleRuns, type RunNames } from '../helpers/docker-sweep.js';
import { TEST_SESSION_IMAGE } from '../helpers/session-image.js';
import { TEST_DOCKER_ENV } from '../helpers/test-engine.js';

/*
 * Everything a hardening controller makes carries the instance label `hardening-<pid>-<n>`, the name prefix
 * `rthard-` and a `/tmp/rthard-<pid>-<n>` sockets folder, so a crashed run is swept away by the next one and
 * nothing else is ever touched.
 */
// Two checkouts testing on one engine set RUNNER_TEST_NAME_PREFIX apart, so fixed session ids never collide.
const NAMES: RunNames = { instancePrefix: 'hardening-', namePrefix: process.env.RUNNER_TEST_NAME_PREFIX ?? 'rthard-' };
const TOKEN = `hardening-token-${process.pid}-0123456789abcdef`;

export interface HardeningControllerOptions {
  /** More controller settings (MAX_SESSIONS, DOCKER_HOST, …) on top of the suite's own. */
  env?: Record<string, string>;
  /** The Docker engine the controller and the helpers use; the tests' engine (DOCKER_HOST or the host's) by default. */
  docker?: Docker;
  /**
   * HOST for the controller: '0.0.0.0' listens on every address of the host as a deployed one does (the suite
   * always sets a token, so that is also what the controller picks when this is left out). Requests of the suite
   * still go to 127.0.0.1.
   */
  host?: string;
}

let counter = 0;

/** A controller process (not started yet) with a token, under the suite's labels and folders. */
export function hardeningController(options: HardeningControllerOptions = {}): ControllerProcess {
  const tag = `${process.pid}-${(counter += 1)}`;
  return new ControllerProcess({
    env: {
      RUNNER_API_TOKEN: TOKEN,
      RUNNER_INSTANCE: `${NAMES.instancePrefix}${tag}`,
      SESSION_NETWORK: `${NAMES.namePrefix}${tag}`,
      SESSION_NAME_PREFIX: NAMES.namePrefix,
      SOCKETS_DIR: `/tmp/${NAMES.namePrefix}${tag}`,
      LOG_LEVEL: 'info',
      SESSION_IMAGE: TEST_SESSION_IMAGE,
      // Two Docker volumes per session unless a test turns the disk limit on (with a SESSION_DISK_DIR of its own).
      SESSION_DISK_LIMIT: '0',
      ...TEST_DOCKER_ENV,
      ...(options.host ? { HOST: options.host } : {}),
      ...options.env,
    },
    logFile: `/tmp/${NAMES.namePrefix}${tag}.log`,
    docker: options.docker,
  });
}

/** Removes what crashed earlier hardening runs left behind. */
export function sweepHardeningLeftovers(docker?: Docker): Promise<void> {
  return sweepStaleRuns(NAMES, docker);
}
