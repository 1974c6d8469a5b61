import type { FastifyBaseLogger } from 'fastify';
import type { AppDeps } from '../../app.js';
import type { ControllerConfig } from '../../config.js';
import type { KubeApi } from './kube-api.js';
import { KubernetesSessionRuntime } from './kubernetes-session-runtime.js';
import { KubernetesStateStore } from './kubernetes-state-store.js';
import { LeaseLeadership } from './leader-lease.js';

/** What the controller app needs to run sessions as pods: the runtime, its state in Secrets, and the leader lease. */
export function kubernetesDeps(api: KubeApi, config: ControllerConfig, log: FastifyBaseLogger, now?: () => number): Pick<AppDeps, 'runtime' | 'store' | 'leadership'> {
  // A record younger than two start timeouts may belong to a start still under way on another replica.
  const settleMs = 2 * config.sessionStartTimeoutSeconds * 1000;
  return {
    runtime: new KubernetesSessionRuntime(api, config, log),
    store: new KubernetesStateStore(api, config.kubernetes, config.instance, settleMs, log, now),
    leadership: new LeaseLeadership(api, config.kubernetes, log, now),
  };
}
