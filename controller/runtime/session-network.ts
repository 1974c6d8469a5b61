import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import { daemonMessage, daemonStatus as statusOf } from '../../core/docker/docker-errors.js';
import { Label, MANAGED_BY } from './labels.js';
import { ICC_OPTION, isolatesContainers, subnetsOf, type NetworkInfo } from './docker-inspect.js';
import type { HostGuard } from './host-guard.js';
import { toRuntimeError } from './runtime-errors.js';

/**
 * The one bridge network of all sessions, with inter-container traffic off: sessions reach the internet, never each
 * other. Made on the first create, guarded from the host's own services (the host guard), and its subnets told to
 * whoever refuses them (the controller's port).
 */
export class SessionNetwork {
  constructor(
    private readonly docker: Docker,
    private readonly name: string,
    private readonly instance: string,
    private readonly log: FastifyBaseLogger,
    private readonly hostGuard: HostGuard | null,
  ) {}

  // Concurrent creates share one check-and-create: Docker's CheckDuplicate is not atomic, and two networks of one
  // name make every later create fail as ambiguous.
  #ensuring: Promise<void> | undefined;

  /** Makes the network unless it exists; refuses one that lets containers reach each other. */
  ensure(): Promise<void> {
    this.#ensuring ??= this.#ensureOnce().finally(() => {
      this.#ensuring = undefined;
    });
    return this.#ensuring;
  }

  /** Calls `listener` with the network's subnets now (if known) and whenever they are learned. */
  async watchSubnets(listener: (subnets: string[]) => void): Promise<void> {
    this.#subnetListeners.push(listener);
    if (this.#subnets) listener(this.#subnets);
    else await this.learnSubnets();
  }

  #subnetListeners: ((subnets: string[]) => void)[] = [];
  // Null until the network has been inspected once (it may not exist: then an empty list).
  #subnets: string[] | null = null;

  /** Inspects the network for its subnets until they are known, when someone listens. */
  async learnSubnets(): Promise<void> {
    if (this.#subnets || this.#subnetListeners.length === 0) return;
    try {
      this.#publishSubnets(await this.docker.getNetwork(this.name).inspect());
    } catch (error) {
      if (statusOf(error) === 404) this.#publishSubnets(null);
      else this.log.warn({ err: error }, 'could not inspect the sessions network for its subnets');
    }
  }

  /** Every reconcile: rules lost to a flush or a host reboot come back while sessions run. */
  async recheckHostGuard(): Promise<void> {
    if (!this.hostGuard) return;
    try {
      await this.#guardHost((await this.docker.getNetwork(this.name).inspect()) as NetworkInfo);
    } catch (error) {
      if (statusOf(error) !== 404) this.log.error({ err: error }, 'could not re-check the host guard of the sessions network');
    }
  }

  #publishSubnets(info: NetworkInfo | null): void {
    const subnets = subnetsOf(info);
    // An empty list while the network is missing must not count as known: it is inspected again until it exists.
    this.#subnets = subnets.length > 0 ? subnets : null;
    for (const listener of this.#subnetListeners) listener(subnets);
  }

  async #ensureOnce(): Promise<void> {
    const { name } = this;
    try {
      const info = (await this.docker.getNetwork(name).inspect()) as NetworkInfo;
      if (!isolatesContainers(info)) {
        throw new AppError('DOCKER_ERROR', `network ${name} lets containers reach each other (${ICC_OPTION} is not false): remove it or choose another SESSION_NETWORK`);
      }
      await this.#guardHost(info);
      this.#publishSubnets(info);
      return;
    } catch (error) {
      if (error instanceof AppError) throw error;
      if (statusOf(error) !== 404) throw toRuntimeError(error, `inspect network ${name}`);
    }
    this.log.info({ network: name }, 'creating sessions network');
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Options: { [ICC_OPTION]: 'false' },
        Labels: { [Label.managedBy]: MANAGED_BY, [Label.instance]: this.instance },
      });
    } catch (error) {
      // Another create made it in between: fine, it has the same options.
      if (statusOf(error) !== 409) throw toRuntimeError(error, `create network ${name}`);
    }
    // Its subnets are known (and refused by the controller's port and the host guard) before a session starts on it.
    let info: NetworkInfo;
    try {
      info = (await this.docker.getNetwork(name).inspect()) as NetworkInfo;
    } catch (error) {
      throw toRuntimeError(error, `inspect network ${name}`);
    }
    await this.#guardHost(info);
    this.#publishSubnets(info);
  }

  // Keeps sessions off the host's own services; a session never starts on a network without the rules.
  async #guardHost(info: NetworkInfo): Promise<void> {
    if (!this.hostGuard) return;
    const bridge = bridgeOf(info);
    try {
      await this.hostGuard.protect(bridge);
    } catch (error) {
      throw new AppError('SESSION_START_FAILED', `could not install the host guard (iptables) for bridge ${bridge}: ${daemonMessage(error)}; run the controller as root with iptables, or set SESSION_HOST_GUARD=false`, undefined, { cause: error });
    }
  }
}

// Docker names a bridge network's interface br-<first 12 of its id> unless an option names it.
function bridgeOf(info: NetworkInfo): string {
  return info.Options?.['com.docker.network.bridge.name'] ?? `br-${(info.Id ?? '').slice(0, 12)}`;
}
