import type { FastifyBaseLogger } from 'fastify';
import { createDockerClient } from '../core/docker/docker-client.js';
import { createLogger } from '../core/process/logger.js';
import { closeOnSignals, readConfigOrExit } from '../core/process/start-up.js';
import { buildApp, type AppDeps } from './app.js';
import { parseControllerConfig, type ControllerConfig } from './config.js';
import { DockerSessionRuntime } from './runtime/docker-session-runtime.js';
import { raiseHostInotifyLimits } from './runtime/host-limits.js';

async function main(): Promise<void> {
  const config = readConfigOrExit('controller', () => parseControllerConfig(process.env));
  const log = createLogger(config.logLevel);
  if (config.runtime === 'docker') await raiseInotifyLimits(config, log);
  const app = await buildApp({ config, logger: log, ...(await runtimeDeps(config, log)) });
  if (!config.apiToken) {
    log.warn({ host: config.host }, 'RUNNER_API_TOKEN is not set: the API has no authentication, so it listens on loopback only');
  }
  await app.listen({ host: config.host, port: config.port });

  // Sessions live in Docker or the cluster and outlive the controller: shutting down closes listeners and WebSockets only.
  closeOnSignals('controller', log, () => app.close());
}

// Every session's watchers count against the host root's inotify limits (runtime/host-limits.ts).
async function raiseInotifyLimits(config: ControllerConfig, log: FastifyBaseLogger): Promise<void> {
  try {
    const { before, after } = await raiseHostInotifyLimits(config.maxSessions);
    if (after.maxUserInstances !== before.maxUserInstances || after.maxUserWatches !== before.maxUserWatches) {
      log.info({ before, after, maxSessions: config.maxSessions }, 'raised the host inotify limits (fs.inotify.max_user_instances, max_user_watches) for MAX_SESSIONS');
    }
  } catch (error) {
    log.error({ err: error }, 'could not raise the host inotify limits: workspace watches fail once about 128 sessions watch at once; run the controller as root, or raise fs.inotify.max_user_instances yourself (docs/operations.md)');
  }
}

// Docker by default; SESSION_RUNTIME=kubernetes reads the cluster from KUBECONFIG or the pod's service account.
// The Kubernetes client is loaded only then: it alone is about half the controller's memory (100 MiB of RSS).
async function runtimeDeps(config: ControllerConfig, log: FastifyBaseLogger): Promise<Pick<AppDeps, 'runtime' | 'store' | 'leadership'>> {
  if (config.runtime === 'kubernetes') {
    const [{ createKubeApi }, { kubernetesDeps }] = await Promise.all([import('./runtime/kubernetes/kube-api.js'), import('./runtime/kubernetes/kubernetes-deps.js')]);
    return kubernetesDeps(createKubeApi(config.kubernetes.namespace), config, log);
  }
  return { runtime: new DockerSessionRuntime(createDockerClient(config.dockerHost), config, log) };
}

await main();
