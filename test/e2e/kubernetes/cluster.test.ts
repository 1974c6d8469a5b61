import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../controller/app.js';
import { parseControllerConfig } from '../../../controller/config.js';
import { createKubeApi, type KubeApi } from '../../../controller/runtime/kubernetes/kube-api.js';
import { kubernetesDeps } from '../../../controller/runtime/kubernetes/kubernetes-deps.js';
import { ownSelector } from '../../../controller/runtime/kubernetes/session-pod.js';
import { TEST_SESSION_IMAGE } from '../../helpers/session-image.js';

// The one tier that needs a real cluster: Kubernetes >= 1.33 (or the ProcMountType and UserNamespacesSupport gates),
// deploy/kubernetes applied, the session image on its nodes, and pod IPs routable from where the test runs.
const KUBECONFIG = process.env.KUBECONFIG;
const NAMESPACE = process.env.RUNNER_TEST_NAMESPACE ?? 'runner-sessions';
const NEEDS = 'set KUBECONFIG to a cluster with deploy/kubernetes applied (docs/kubernetes.md) to run it';

describe.skipIf(!KUBECONFIG).sequential(`sessions as pods on a real cluster${KUBECONFIG ? '' : ` (skipped: ${NEEDS})`}`, () => {
  const instance = `e2e-k8s-${process.pid.toString(36)}`;
  let app: FastifyInstance;
  let api: KubeApi;

  beforeAll(async () => {
    const config = parseControllerConfig({
      SESSION_RUNTIME: 'kubernetes',
      SESSION_NAMESPACE: NAMESPACE,
      RUNNER_INSTANCE: instance,
      SESSION_IMAGE: TEST_SESSION_IMAGE,
      HOSTNAME: instance,
      LEADER_LEASE_NAME: instance,
      SESSION_START_TIMEOUT_SECONDS: '180',
    });
    api = createKubeApi(NAMESPACE);
    const log = pino({ level: 'silent' });
    app = await buildApp({ config, logger: log, ...kubernetesDeps(api, config, log) });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    if (!api) return;
    // Whatever a failed test left: every pod, Secret and the Lease of this test's instance.
    const labelSelector = ownSelector(instance);
    await api.core.deleteCollectionNamespacedPod({ namespace: NAMESPACE, labelSelector }).catch(() => {});
    await api.core.deleteCollectionNamespacedSecret({ namespace: NAMESPACE, labelSelector }).catch(() => {});
    await api.coordination.deleteNamespacedLease({ name: instance, namespace: NAMESPACE }).catch(() => {});
  });

  it('creates a session whose pod kept hostUsers and procMount, runs a container inside it, and deletes it', async () => {
    const created = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'k8s-e2e' } });
    expect(created.statusCode, created.body).toBe(201);
    const exec = await app.inject({ method: 'POST', url: '/sessions/k8s-e2e/exec', payload: { command: ['docker', 'run', '--rm', 'runner-busybox', 'true'] } });
    expect(exec.statusCode, exec.body).toBe(200);
    expect(exec.json().exit_code, exec.body).toBe(0);
    expect((await app.inject({ method: 'DELETE', url: '/sessions/k8s-e2e' })).statusCode).toBe(200);
    const left = await api.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: ownSelector(instance) });
    expect(left.items.filter((p) => !p.metadata?.deletionTimestamp)).toEqual([]);
  });
});
