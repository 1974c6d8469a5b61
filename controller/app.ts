import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { fastifyCookie } from '@fastify/cookie';
import websocket from '@fastify/websocket';
import { registerBearerAuth } from '../core/http/bearer-auth.js';
import { toAppError } from '../core/http/error-handler.js';
import { createServer } from '../core/http/server.js';
import { ControllerRoute } from '../shared/routes.js';
import type { ControllerConfig } from './config.js';
import { GrantGenerations } from './grants/grant-generations.js';
import { previewCookieName, registerGrantGate } from './grants/grant-gate.js';
import { Grants } from './grants/grants.js';
import { grantsRoutes } from './grants/grants.routes.js';
import { previewRewriter } from './grants/preview-host.js';
import { previewRoutes } from './grants/preview.routes.js';
import { loadSigningKey } from './grants/signing-key.js';
import { healthRoutes } from './health/health.routes.js';
import { SessionNetworkGuard } from './http/session-network-guard.js';
import { ControllerMetrics, metricsRoutes } from './metrics.js';
import { CONSOLE_ROUTES, consoleRoutes } from './console/console.routes.js';
import { consoleAssetsDir } from './web-assets.js';
import { API_DOCS_ROUTES, registerApiDocsPage, registerOpenApi } from './openapi/openapi.js';
import { proxyRoutes } from './proxy/proxy.routes.js';
import type { SessionRuntime } from './runtime/session-runtime.js';
import { probeAgentHealth, type ProbeAgent } from './sessions/agent-probe.js';
import { startExpiry } from './sessions/expiry.js';
import { SessionManager } from './sessions/session-manager.js';
import { soleLeader, type Leadership } from './sessions/leadership.js';
import { SessionStore } from './sessions/session-store.js';
import type { StateStore } from './sessions/state-store.js';
import { sessionsRoutes } from './sessions/sessions.routes.js';
import { UsageCache } from './sessions/usage-cache.js';
import { containrlabRoutes } from './containrlab/containrlab.routes.js';

export interface AppDeps {
  config: ControllerConfig;
  runtime: SessionRuntime;
  /** Where the controller keeps its per-session state; a folder per session under SOCKETS_DIR by default. */
  store?: StateStore;
  /** Who runs the expiry sweep and the warm pool among replicas; this controller alone by default. */
  leadership?: Leadership;
  /** How a session's agent is asked whether it is ready; the real one over its unix socket by default. */
  probeAgent?: ProbeAgent;
  /** A pino logger; none (silent) in tests. */
  logger?: FastifyBaseLogger;
  /** The console's built files; the checkout's or the image's by default. */
  consoleAssetsDir?: string;
  /** The clock, replaceable in tests. */
  now?: () => number;
}

// WebSocket close code 1001: the endpoint is going away (a restart); clients may reconnect.
const GOING_AWAY = 1001;

/**
 * Builds the controller's HTTP/WebSocket app without listening (main.ts listens; tests use inject or port 0).
 * When ready it reconciles sessions with Docker, starts the expiry sweep and fills the warm pool; closing it leaves
 * sessions and pool members running.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, runtime } = deps;
  const leadership = deps.leadership ?? soleLeader;
  // With PREVIEW_DOMAIN, a request's Host decides first: a preview origin reaches its preview and nothing else.
  const app = createServer({ logger: deps.logger, rewriteUrl: config.previewDomain ? previewRewriter(config.previewDomain) : undefined });
  // Grant generations live in this controller's folder whatever the runtime (on Kubernetes, per replica).
  const folders = new SessionStore(config.socketsDir, config.instance);
  const store: StateStore = deps.store ?? folders;
  const grants = new Grants({
    loadKey: () => loadSigningKey(config.signingKey, config.socketsDir),
    generations: new GrantGenerations((sessionId) => folders.folder({ kind: 'session', sessionId })),
    allowedOrigins: config.allowedOrigins,
    previewDomain: config.previewDomain,
    previewPublicPort: config.previewPublicPort,
    previewHttps: config.previewHttps,
    previewCookieSeconds: config.maxTtlSeconds,
    now: deps.now,
  });

  const usage = new UsageCache({
    runtime,
    ttlMs: config.usageTtlSeconds * 1000,
    diskWalkMs: config.usageDiskWalkSeconds * 1000,
    log: app.log,
    now: deps.now,
  });
  // The gauges read their counts only when scraped, after `sessions` exists.
  const metrics: ControllerMetrics = new ControllerMetrics({
    activeSessions: () => sessions.count(),
    pool: () => sessions.poolCounts(),
    starts: () => sessions.startCounts(),
    ...(usage.measures ? { sessionUsage: () => usage.all(sessions.readySessions()) } : {}),
    ...(runtime.diskFreeBytes ? { diskFreeBytes: runtime.diskFreeBytes.bind(runtime) } : {}),
  });
  const sessions: SessionManager = new SessionManager({
    config,
    runtime,
    store,
    leadership,
    probeAgent: deps.probeAgent ?? probeAgentHealth,
    metrics,
    log: app.log,
    now: deps.now,
    onRemoved: (sessionId) => {
      grants.closeOpened(sessionId);
      usage.forget(sessionId);
    },
  });

  // Sessions must never reach the API, whatever address it listens on: refused before any HTTP is read.
  const guard = new SessionNetworkGuard(app.log);
  guard.protect(app.server);

  app.addHook('onError', async (_request, _reply, error) => {
    metrics.errors.inc({ code: toAppError(error).code });
  });
  await app.register(websocket, {
    options: { maxPayload: 1024 * 1024 },
    preClose(done) {
      for (const client of this.websocketServer.clients) client.close(GOING_AWAY, 'controller shutting down');
      this.websocketServer.close(() => done());
    },
  });
  // After the websocket plugin: a refused upgrade must be one it knows, so that it closes the connection.
  // Browser grants are checked first; the bearer check lets exactly the requests they admitted through.
  const cookieName = previewCookieName(config.previewHttps);
  await app.register(fastifyCookie);
  const admission = registerGrantGate(app, grants, cookieName);
  const publicRoutes = [ControllerRoute.health, ...CONSOLE_ROUTES, ...(config.publicApiDocs ? API_DOCS_ROUTES : [])];
  registerBearerAuth(app, {
    token: config.apiToken,
    publicRoutes,
    admittedOtherwise: (request) => admission(request) !== undefined,
  });

  let stopExpiry: (() => void) | undefined;
  app.addHook('onReady', async () => {
    // Before listening: the subnets of a network that exists are refused from the first connection on.
    await runtime.watchSessionSubnets?.((subnets) => guard.update(subnets));
    await sessions.start();
    // A replica that takes the lead sweeps at once: it adopts the pool and removes what expired meanwhile.
    await leadership.start((leader) => {
      if (leader) void sessions.sweep().catch((err: unknown) => app.log.warn({ err }, 'sweep on taking the lead failed'));
    });
    stopExpiry = startExpiry(sessions, config.cleanupIntervalSeconds, app.log);
  });
  app.addHook('onClose', async () => {
    stopExpiry?.();
    await leadership.stop();
    // Sessions and warm pool members keep running: the next controller adopts them.
    await sessions.close();
    runtime.close?.();
    store.close?.();
  });

  // Before the routes: the generator collects them as they are added.
  await registerOpenApi(app);
  await registerApiDocsPage(app);
  await app.register(healthRoutes, { runtime, sessions });
  await app.register(metricsRoutes, { metrics });
  const previewFrames = config.previewDomain ? `${config.previewHttps ? 'https' : 'http'}://*.${config.previewDomain}:*` : undefined;
  await app.register(consoleRoutes, { assetsDir: deps.consoleAssetsDir ?? consoleAssetsDir(), previewFrames });
  await app.register(sessionsRoutes, { sessions, usage, templatesDir: config.templatesDir });
  if (config.containrlabCompat) await app.register(containrlabRoutes, { sessions, config });
  const resolveAgent = (sessionId: string) => sessions.resolveAgent(sessionId);
  await app.register(grantsRoutes, { grants, resolveAgent, admission, publicUrl: config.publicUrl });
  if (config.previewDomain) {
    const secureContext = config.previewHttps || isLocalhostName(config.previewDomain);
    await app.register(previewRoutes, { grants, resolveAgent, admission, cookieName, https: config.previewHttps, secureContext });
  }
  // After the session routes: the proxy takes everything else below /sessions/{id}/.
  await app.register(proxyRoutes, {
    resolveAgent,
    observe: (kind, seconds, statusCode) => metrics.observeProxy(kind, seconds, statusCode),
  });
  return app;
}

// Browsers treat `localhost` and names below it as secure even over plain http (local use and tests).
function isLocalhostName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost');
}
