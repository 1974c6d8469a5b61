/**
 * Paths of the agent's API. The controller serves the same paths below `/sessions/{id}` and proxies them by
 * stripping that prefix, so these are the only spellings of them in the code.
 */
export const AgentRoute = {
  health: '/health',
  files: '/files',
  /** Fastify wildcard route: `/files/<path inside the workspace>`. */
  file: '/files/*',
  filesMkdir: '/files/mkdir',
  filesMove: '/files/move',
  exec: '/exec',
  execStream: '/exec/stream',
  build: '/build',
  buildStream: '/build/stream',
  run: '/run',
  stop: '/stop',
  containers: '/containers',
  containerLogs: '/containers/:name/logs',
  images: '/images',
  terminals: '/terminals',
  terminal: '/terminals/:terminal_id',
  terminalResize: '/terminals/:terminal_id/resize',
  terminalWs: '/terminal/ws',
  watchWs: '/watch/ws',
  watchSse: '/watch',
  /** The workspace (or a folder of it) as a .tar.gz (GET), or a .tar/.tar.gz extracted into it (PUT). */
  archive: '/archive',
} as const;

/** Controller-only paths. */
export const ControllerRoute = {
  health: '/health',
  metrics: '/metrics',
  sessions: '/sessions',
  session: '/sessions/:id',
  sessionExtend: '/sessions/:id/extend',
  /** Browser grants of a session: minted (POST) and revoked (DELETE) by the backend. */
  sessionGrants: '/sessions/:id/grants',
  /** A file link's target: one workspace file, authorised by the signed `token` in its query. */
  sessionDownload: '/sessions/:id/download',
  /** On a preview origin: where a preview grant's ticket is exchanged for the origin's cookie. */
  previewAuth: '/__runner/auth',
  /** Everything below a session is proxied to its agent. */
  sessionProxyPrefix: '/sessions/:id/',
} as const;

export const sessionPath = (id: string): string => `/sessions/${encodeURIComponent(id)}`;
