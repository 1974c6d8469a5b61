import type { V1Lease } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import type { KubernetesConfig } from '../../config.js';
import type { Leadership } from '../../sessions/leadership.js';
import { kubeStatus, type KubeApi } from './kube-api.js';

/**
 * Leadership by a coordination.k8s.io Lease, as client-go's leader election does it: the holder renews it every
 * third of its duration; another replica takes it over once it has gone unrenewed for a whole duration. Every
 * write carries the resourceVersion it read, so two replicas never both win.
 */
export class LeaseLeadership implements Leadership {
  #leader = false;
  #timer: NodeJS.Timeout | undefined;
  #onChange: (leader: boolean) => void = () => {};
  #round: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: KubeApi,
    private readonly config: KubernetesConfig,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {}

  isLeader(): boolean {
    return this.#leader;
  }

  async start(onChange: (leader: boolean) => void): Promise<void> {
    this.#onChange = onChange;
    await this.#tryRound();
    this.#timer = setInterval(() => void this.#tryRound(), (this.config.leaseSeconds * 1000) / 3);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#round;
    if (!this.#leader) return;
    // Handing over at once: the next replica need not wait a whole lease duration.
    await this.#write((lease) => ({ ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 } })).catch(() => false);
    this.#set(false);
  }

  #tryRound(): Promise<void> {
    this.#round = this.#acquireOrRenew().then(
      (leader) => this.#set(leader),
      (err: unknown) => {
        // Unsure whether it still holds the lease: it must act as if it did not.
        this.log.warn({ err }, 'could not renew the leader lease');
        this.#set(false);
      },
    );
    return this.#round;
  }

  async #acquireOrRenew(): Promise<boolean> {
    const { coordination, namespace } = this.api;
    const { leaseName: name, leaseSeconds, replicaId } = this.config;
    const now = new Date(this.now());
    let lease: V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (kubeStatus(error) !== 404) throw error;
      try {
        await coordination.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name },
            spec: { holderIdentity: replicaId, leaseDurationSeconds: leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return true;
      } catch (createError) {
        if (kubeStatus(createError) === 409) return false;
        throw createError;
      }
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = !spec.holderIdentity || renewed + (spec.leaseDurationSeconds ?? leaseSeconds) * 1000 < now.getTime();
    if (spec.holderIdentity !== replicaId && !expired) return false;
    const taking = spec.holderIdentity !== replicaId;
    return this.#write(() => ({
      ...lease,
      spec: {
        ...spec,
        holderIdentity: replicaId,
        leaseDurationSeconds: leaseSeconds,
        renewTime: now,
        ...(taking ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    }), lease);
  }

  // False when another replica wrote the lease since it was read (409).
  async #write(change: (lease: V1Lease) => V1Lease, read?: V1Lease): Promise<boolean> {
    const { coordination, namespace } = this.api;
    const name = this.config.leaseName;
    const lease = read ?? (await coordination.readNamespacedLease({ name, namespace }));
    try {
      await coordination.replaceNamespacedLease({ name, namespace, body: change(lease) });
      return true;
    } catch (error) {
      if (kubeStatus(error) === 409) return false;
      throw error;
    }
  }

  #set(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.log.info({ replica: this.config.replicaId }, leader ? 'leading: running the expiry sweep and warm pool' : 'no longer leading');
    this.#onChange(leader);
  }
}
