import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../controller/app.js';
import { parseControllerConfig } from '../../../controller/config.js';
import { createKubeApi } from '../../../controller/runtime/kubernetes/kube-api.js';
import { kubernetesDeps } from '../../../controller/runtime/kubernetes/kubernetes-deps.js';
import { droppedSecurityFields, sessionPod, sessionSecret } from '../../../controller/runtime/kubernetes/session-pod.js';
import { startEnvtestApiServer, type EnvtestApiServer } from '../../helpers/envtest.js';

// The API-only tier: a real kube-apiserver (no nodes, so no pod ever runs) judges the pods the runtime makes.
const ASSETS = process.env.KUBEBUILDER_ASSETS;
const NEEDS = 'set KUBEBUILDER_ASSETS to a folder with envtest\'s etcd and kube-apiserver (1.33 or later) to run it';
const NAMESPACE = 'runner-sessions';

describe.skipIf(!ASSETS).sequential(`session pods against a real kube-apiserver${ASSETS ? '' : ` (skipped: ${NEEDS})`}`, () => {
  const config = parseControllerConfig({ SESSION_RUNTIME: 'kubernetes', SESSION_NAMESPACE: NAMESPACE, SESSION_START_TIMEOUT_SECONDS: '5' });
  let server: EnvtestApiServer | undefined;

  beforeAll(async () => {
    server = await startEnvtestApiServer(ASSETS!);
    await createKubeApi(NAMESPACE, server.config).core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  });
  afterAll(async () => server?.stop());

  it('accepts the Secret and the pod as the runtime makes them, and keeps hostUsers and procMount', async () => {
    const api = createKubeApi(NAMESPACE, server!.config);
    const owner = { kind: 'session', sessionId: 'api-check' } as const;
    await api.core.createNamespacedSecret({ namespace: NAMESPACE, body: sessionSecret(owner, config.instance, 'x'.repeat(64), {}) });
    const created = await api.core.createNamespacedPod({ namespace: NAMESPACE, body: sessionPod({ owner, containerName: 'sess-api-check', createdAt: new Date() }, config) });
    const read = await api.core.readNamespacedPod({ name: created.metadata!.name!, namespace: NAMESPACE });
    expect(droppedSecurityFields(read)).toEqual([]);
  });

  it('refuses a session, naming the gates, on an API server with them off', async () => {
    const gated = await startEnvtestApiServer(ASSETS!, 'UserNamespacesSupport=false,ProcMountType=false');
    try {
      const api = createKubeApi(NAMESPACE, gated.config);
      await api.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      const log = pino({ level: 'silent' });
      const app = await buildApp({ config, logger: log, ...kubernetesDeps(api, config, log) });
      await app.ready();
      try {
        const res = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'gated' } });
        expect(res.statusCode, res.body).toBe(503);
        expect(res.json().code).toBe('RUNTIME_FEATURE_MISSING');
        expect((await api.core.listNamespacedPod({ namespace: NAMESPACE })).items).toEqual([]);
      } finally {
        await app.close();
      }
    } finally {
      await gated.stop();
    }
  });
});
