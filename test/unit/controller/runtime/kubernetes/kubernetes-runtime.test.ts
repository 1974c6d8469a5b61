import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKubeApi, kubeConfigFor, toKubeError } from '../../../../../controller/runtime/kubernetes/kube-api.js';
import { Label } from '../../../../../controller/runtime/labels.js';
import { NAMESPACE, startFakeCluster, startKubeController } from '../../../../helpers/kube-controller.js';

type Cluster = Awaited<ReturnType<typeof startFakeCluster>>;

async function until<T>(what: string, check: () => T | Promise<T>): Promise<NonNullable<T>> {
  for (let i = 0; i < 200; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

const pods = (cluster: Cluster) => cluster.api.list('pods', NAMESPACE);
const secrets = (cluster: Cluster) => cluster.api.list('secrets', NAMESPACE);

describe('Kubernetes runtime through the controller app (fake API server)', () => {
  let cluster: Cluster;
  const apps: FastifyInstance[] = [];
  beforeEach(async () => {
    cluster = await startFakeCluster();
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await cluster.close();
  });
  const controller = async (env: Record<string, string> = {}, now?: () => number) => {
    const { app } = await startKubeController(cluster, env, now);
    apps.push(app);
    return app;
  };

  it('creates a session as a pod with its token in a Secret, reaches its agent at the pod IP, and deletes both', async () => {
    const app = await controller();
    const created = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'k1' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ session_id: 'k1', container_name: 'sess-k1', status: 'running' });

    const [pod] = pods(cluster);
    expect(pod?.metadata.labels).toMatchObject({ [Label.sessionId]: 'k1', [Label.managedBy]: 'runner-controller' });
    expect(pod?.spec).toMatchObject({ hostUsers: false, securityContext: { seccompProfile: { type: 'Localhost' } } });
    expect(secrets(cluster)).toHaveLength(1);

    const got = await app.inject({ url: '/sessions/k1' });
    expect(got.json()).toMatchObject({ session_id: 'k1', status: 'running' });
    // Proxied to the pod's agent over TCP with the Secret's token (the fake agent refuses any other).
    const proxied = await app.inject({ url: '/sessions/k1/files?path=/workspace' });
    expect(proxied.statusCode, proxied.body).toBe(200);
    expect(proxied.json()).toMatchObject({ agent: (pod?.status as { podIP: string }).podIP, url: '/files?path=/workspace' });
    // Look-ups read the watch-fed caches: requests to the session cost the API server nothing.
    const asked = cluster.api.requests.length;
    for (let i = 0; i < 3; i++) expect((await app.inject({ url: '/sessions/k1/files' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/sessions/k1' })).statusCode).toBe(200);
    expect(cluster.api.requests.slice(asked)).toEqual([]);

    expect((await app.inject({ method: 'DELETE', url: '/sessions/k1' })).statusCode).toBe(200);
    expect(pods(cluster)).toEqual([]);
    expect(secrets(cluster)).toEqual([]);
    expect((await app.inject({ url: '/sessions/k1' })).statusCode).toBe(404);
  });

  it('refuses to go on, naming the feature gates, when the API server silently drops hostUsers and procMount', async () => {
    cluster.api.gatesOff = true;
    const app = await controller();
    const res = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'gated' } });
    expect(res.statusCode).toBe(503);
    expect(res.json().code).toBe('RUNTIME_FEATURE_MISSING');
    expect(res.json().message).toMatch(/UserNamespacesSupport/);
    expect(res.json().message).toMatch(/ProcMountType/);
    expect(pods(cluster)).toEqual([]);
    expect(secrets(cluster)).toEqual([]);
  });

  it('answers 409 when a pod of that name exists that is not the session', async () => {
    const app = await controller();
    // Made by someone else: the name is taken, the pod is not the controller's to remove.
    const made = await fetch(`${cluster.url}/api/v1/namespaces/${NAMESPACE}/pods`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.api.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sess-taken' }, spec: { containers: [{ name: 'x', image: 'busybox' }] } }),
    });
    expect(made.status).toBe(201);
    const res = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'taken' } });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('SESSION_EXISTS');
    expect(pods(cluster).map((p) => p.metadata.name)).toEqual(['sess-taken']);
  });

  it('never removes another controller instance\'s pod or Secret, even under the names it would use', async () => {
    const app = await controller();
    const made = await fetch(`${cluster.url}/api/v1/namespaces/${NAMESPACE}/pods`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.api.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'sess-theirs', labels: { [Label.managedBy]: 'runner-controller', [Label.instance]: 'other', [Label.sessionId]: 'theirs' } },
        spec: { containers: [{ name: 'session', image: 'runner-session' }] },
      }),
    });
    expect(made.status).toBe(201);
    const secret = await fetch(`${cluster.url}/api/v1/namespaces/${NAMESPACE}/secrets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.api.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'session-theirs-agent', labels: { [Label.instance]: 'other' } }, stringData: { token: 'theirs' } }),
    });
    expect(secret.status).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: '/sessions/theirs' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'theirs' } })).statusCode).toBe(409);
    expect(pods(cluster).map((p) => p.metadata.name)).toEqual(['sess-theirs']);
    expect(secrets(cluster).map((p) => p.metadata.name)).toEqual(['session-theirs-agent']);
  });

  it('passes the API server\'s reason on when it refuses a pod as invalid (422)', async () => {
    const api = createKubeApi(NAMESPACE, kubeConfigFor(cluster.url, cluster.api.token));
    const error = await api.core
      .createNamespacedPod({ namespace: NAMESPACE, body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'broken' }, spec: { containers: [{ name: 'x', image: 'i', ports: [{ containerPort: 'http' as never }] }] } } })
      .then(() => null, (e: unknown) => e);
    const mapped = toKubeError(error, 'create the session pod', 'SESSION_START_FAILED');
    expect(mapped.code).toBe('SESSION_START_FAILED');
    expect(mapped.message).toMatch(/could not create the session pod: Pod "broken" is invalid/);
    expect(pods(cluster)).toEqual([]);
  });

  it('forgets a session whose pod was deleted behind its back', async () => {
    const app = await controller();
    await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'gone' } });
    cluster.api.remove('pods', NAMESPACE, 'sess-gone');
    // The watch tells the controller; from then on the session is gone.
    await until('the session to be gone', async () => (await app.inject({ url: '/sessions/gone' })).statusCode === 404);
    await until('its Secret to go', () => secrets(cluster).length === 0);
  });

  it('recovers its sessions after a restart from the pods and Secrets alone', async () => {
    let app = await controller();
    await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'keep', ttl_seconds: 600 } });
    const before = (await app.inject({ url: '/sessions/keep' })).json();
    await app.close();
    apps.splice(0);
    app = await controller();
    expect((await app.inject({ url: '/sessions/keep' })).json()).toEqual(before);
    expect((await app.inject({ url: '/sessions/keep/files' })).statusCode).toBe(200);
  });

  it('removes a session past its time on the sweep', async () => {
    const clock = { now: Date.now() };
    const app = await controller({ CLEANUP_INTERVAL_SECONDS: '1' }, () => clock.now);
    await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'short', ttl_seconds: 60 } });
    expect(pods(cluster)).toHaveLength(1);
    clock.now += 61_000;
    await until('the expired pod and its Secret to go', () => pods(cluster).length === 0 && secrets(cluster).length === 0);
    expect((await app.inject({ url: '/sessions/short' })).statusCode).toBe(404);
  });

  it('hands out a warm pod, keeps its token, and tops the pool up again', async () => {
    const app = await controller({ WARM_POOL_SIZE: '1' });
    const member = await until('a warm pod', () => pods(cluster).find((p) => p.metadata.labels?.[Label.poolId] && (p.status as { phase: string }).phase === 'Running'));
    await until('the pool to be ready', async () => /^runner_warm_pool_ready 1$/m.test((await app.inject({ url: '/metrics' })).body));
    const created = await app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'warm1' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json().container_name).toBe('sess-warm1');
    const claimed = cluster.api.get('pods', NAMESPACE, member.metadata.name)!;
    expect(claimed.metadata.annotations?.['io.runner.container-name']).toBe('sess-warm1');
    expect((await app.inject({ url: '/sessions/warm1/files' })).json()).toMatchObject({ agent: (claimed.status as { podIP: string }).podIP });
    await until('a new warm pod', () => pods(cluster).length === 2);
    expect((await app.inject({ method: 'DELETE', url: '/sessions/warm1' })).statusCode).toBe(200);
    expect(cluster.api.get('pods', NAMESPACE, member.metadata.name)).toBeUndefined();
  });

  it('runs two replicas with one leader: either serves any session, only the leader keeps a pool, the other takes over', async () => {
    const a = await controller({ HOSTNAME: 'replica-a', WARM_POOL_SIZE: '1', LEADER_LEASE_SECONDS: '1' });
    const b = await controller({ HOSTNAME: 'replica-b', WARM_POOL_SIZE: '1', LEADER_LEASE_SECONDS: '1' });
    const holder = () => (cluster.api.get('leases', NAMESPACE, 'runner-controller')?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
    expect(holder()).toBe('replica-a');
    await until('a warm pod', () => pods(cluster).some((p) => (p.status as { phase: string }).phase === 'Running'));

    const created = await b.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'shared' } });
    expect(created.statusCode, created.body).toBe(201);
    // B is not the leader: it started the session cold, and A's warm pod is still unclaimed.
    expect(pods(cluster).filter((p) => p.metadata.labels?.[Label.poolId])).toHaveLength(1);
    expect((await b.inject({ url: '/metrics' })).body).toMatch(/^runner_warm_pool_size 0$/m);
    expect((await a.inject({ url: '/metrics' })).body).toMatch(/^runner_warm_pool_size 1$/m);
    expect((await a.inject({ url: '/sessions/shared' })).json()).toMatchObject({ session_id: 'shared', status: 'running' });
    expect((await a.inject({ url: '/sessions/shared/files' })).statusCode).toBe(200);
    const extended = await a.inject({ method: 'POST', url: '/sessions/shared/extend', payload: { ttl_seconds: 3000 } });
    expect(extended.statusCode, extended.body).toBe(200);
    // B hears of the extension through its watch on the Secrets.
    await until('replica-b to see the extension', async () => (await b.inject({ url: '/sessions/shared' })).json().expires_at === extended.json().expires_at);
    expect((await a.inject({ method: 'DELETE', url: '/sessions/shared' })).statusCode).toBe(200);
    await until('replica-b to see the deletion', async () => (await b.inject({ url: '/sessions/shared' })).statusCode === 404);

    await a.close();
    apps.splice(apps.indexOf(a), 1);
    await until('replica-b to lead', () => holder() === 'replica-b');
  });
});
