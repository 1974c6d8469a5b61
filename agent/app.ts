import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type Docker from 'dockerode';
import { registerBearerAuth } from '../core/http/bearer-auth.js';
import { createServer } from '../core/http/server.js';
import type { AgentConfig } from './config.js';
import type { DaemonMonitor } from './supervisor/daemon-monitor.js';
import { toFileError } from './http/file-errors.js';
import { TerminalManager } from './terminal/terminal-manager.js';
import { healthRoutes } from './health/health.routes.js';
import { filesRoutes } from './files/files.routes.js';
import { execRoutes } from './exec/exec.routes.js';
import { dockerRoutes } from './docker/docker.routes.js';
import { terminalRoutes } from './terminal/terminal.routes.js';
import { watchRoutes } from './watch/watch.routes.js';
import { archiveRoutes } from './archive/archive.routes.js';

export interface AppDeps {
  config: AgentConfig;
  docker: Docker;
  daemon: DaemonMonitor;
  /** A pino logger; none (silent) in tests. */
  logger?: FastifyBaseLogger;
}

/** What every route plugin receives: the app's dependencies plus the services buildApp owns. */
export interface RouteDeps extends AppDeps {
  terminals: TerminalManager;
}

/** Builds the agent's HTTP/WebSocket app without listening (main.ts listens; tests use inject or port 0). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  // No line per request: every request the agent answers came through the controller, which logs it. The agent logs
  // what it did (an exec's exit, an error); two more lines per exec cost it 0.1–0.2 ms and the host's engine their copy.
  const app = createServer({ logger: deps.logger, bodyLimit: config.bodyLimitBytes, mapError: toFileError, logRequests: false });
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });
  // After the websocket plugin: a refused upgrade must be one it knows, so that it closes the connection.
  registerBearerAuth(app, { token: config.token, tokenFile: config.tokenFile });

  const terminals = new TerminalManager(config, app.log);
  app.addHook('onClose', async () => terminals.closeAll());
  const routeDeps: RouteDeps = { ...deps, terminals };

  await app.register(healthRoutes, routeDeps);
  await app.register(filesRoutes, routeDeps);
  await app.register(execRoutes, routeDeps);
  await app.register(dockerRoutes, routeDeps);
  await app.register(terminalRoutes, routeDeps);
  await app.register(watchRoutes, routeDeps);
  await app.register(archiveRoutes, routeDeps);
  return app;
}
