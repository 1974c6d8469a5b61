import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { createDockerClient } from '../agent/docker/docker-client.js';
import { buildApp } from './app.js';
import { ConfigError, parseControllerConfig } from './config.js';
import { DockerSessionRuntime } from './runtime/docker-session-runtime.js';

async function main(): Promise<void> {
  let config;
  try {
    config = parseControllerConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`controller: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const log = pino({ level: config.logLevel, redact: ['req.headers.authorization'] });
  const runtime = new DockerSessionRuntime(createDockerClient(config.dockerHost), config, log);
  const app = await buildApp({ config, runtime, logger: log });
  if (!config.apiToken) {
    log.warn({ host: config.host }, 'RUNNER_API_TOKEN is not set: the API has no authentication, so it listens on loopback only');
  }
  await app.listen({ host: config.host, port: config.port });

  // Sessions live in Docker and outlive the controller: shutting down closes listeners and WebSockets only.
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'controller crashed');
    log.info({ signal }, 'controller shutting down; sessions keep running');
    await app.close();
  });
}

await main();
