import { createDockerClient } from '../core/docker/docker-client.js';
import { createLogger } from '../core/process/logger.js';
import { closeOnSignals, readConfigOrExit } from '../core/process/start-up.js';
import { buildApp } from './app.js';
import { parseControllerConfig } from './config.js';
import { DockerSessionRuntime } from './runtime/docker-session-runtime.js';

async function main(): Promise<void> {
  const config = readConfigOrExit('controller', () => parseControllerConfig(process.env));
  const log = createLogger(config.logLevel);
  const runtime = new DockerSessionRuntime(createDockerClient(config.dockerHost), config, log);
  const app = await buildApp({ config, runtime, logger: log });
  if (!config.apiToken) {
    log.warn({ host: config.host }, 'RUNNER_API_TOKEN is not set: the API has no authentication, so it listens on loopback only');
  }
  await app.listen({ host: config.host, port: config.port });

  // Sessions live in Docker and outlive the controller: shutting down closes listeners and WebSockets only.
  closeOnSignals('controller', log, () => app.close());
}

await main();
