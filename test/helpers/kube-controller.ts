import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../controller/app.js';
import { parseControllerConfig, type ControllerConfig } from '../../controller/config.js';
import { createKubeApi, kubeConfigFor } from '../../controller/runtime/kubernetes/kube-api.js';
import { kubernetesDeps } from '../../controller/runtime/kubernetes/kubernetes-deps.js';
import { FakeKubeApi } from './fake-kube-api.js';
import { HEALTHY } from './controller-fakes.js';

export const NAMESPACE = 'runner-test';

/**
 * Session agents as the controller meets them in a cluster: one small HTTP server per pod, on its own loopback
 * address (127.0.0.N) and the one agent port, answering `/health` (and echoing any other request) to its token only.
 */
export class FakePodAgents {
  port = 0;
  readonly #servers = new Map<string, Server>();
  #next = 2;

  async init(): Promise<void> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    this.port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }

  /** Starts an agent holding `token`; resolves to its address. */
  async start(token: string): Promise<string> {
    const ip = `127.0.0.${this.#next++}`;
    const server = createServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'UNAUTHORIZED', message: 'bad token' }));
        return;
      }
      const body = req.url?.startsWith('/health') ? HEALTHY : { agent: ip, method: req.method, url: req.url };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(this.port, ip, resolve));
    this.#servers.set(ip, server);
    return ip;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#servers.values()].map((s) => new Promise((resolve) => s.close(resolve))));
    this.#servers.clear();
  }
}

/** A fake API server whose pods run fake agents: the token is the one in the pod's Secret, as the kubelet mounts it. */
export async function startFakeCluster(): Promise<{ api: FakeKubeApi; url: string; agents: FakePodAgents; close(): Promise<void> }> {
  const api = new FakeKubeApi();
  const agents = new FakePodAgents();
  await agents.init();
  api.schedule = async (pod) => {
    const spec = pod.spec as { volumes?: { name: string; secret?: { secretName: string } }[] };
    const secretName = spec.volumes?.find((v) => v.secret)?.secret?.secretName ?? '';
    const secret = api.get('secrets', NAMESPACE, secretName);
    const data = (secret?.data as Record<string, string> | undefined)?.token;
    // Without its Secret a pod stays in ContainerCreating.
    return data ? agents.start(Buffer.from(data, 'base64').toString('utf8')) : null;
  };
  const url = await api.start();
  return { api, url, agents, close: async () => Promise.all([api.close(), agents.close()]).then(() => {}) };
}

/** The real controller app with the Kubernetes runtime pointed at the fake cluster; `replica` names it in the Lease. */
export async function startKubeController(
  cluster: { api: FakeKubeApi; url: string; agents: FakePodAgents },
  env: Record<string, string> = {},
  now?: () => number,
): Promise<{ app: FastifyInstance; config: ControllerConfig }> {
  const config = parseControllerConfig({
    SESSION_RUNTIME: 'kubernetes',
    SESSION_NAMESPACE: NAMESPACE,
    AGENT_PORT: String(cluster.agents.port),
    SESSION_START_TIMEOUT_SECONDS: '10',
    ...env,
  });
  const api = createKubeApi(NAMESPACE, kubeConfigFor(cluster.url, cluster.api.token));
  const logger = testLogger();
  const app = await buildApp({ config, logger, ...kubernetesDeps(api, config, logger, now), ...(now ? { now } : {}) });
  await app.ready();
  return { app, config };
}

// Silent unless KUBE_TEST_LOG names a level (when debugging a test).
function testLogger(): FastifyBaseLogger {
  return pino({ level: process.env.KUBE_TEST_LOG ?? 'silent' });
}
