import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { AppError } from '../../shared/errors.js';
import { ControllerRoute, sessionPath } from '../../shared/routes.js';
import type { GrantRequest, GrantResponse } from '../../shared/schemas/grants.js';
import { readGrant, signGrant, type GrantClaims, type TokenKind } from './grant-token.js';
import type { GrantGenerations } from './grant-generations.js';

/** The longest a grant's URL stays usable, per capability. */
export const MAX_GRANT_TTL_SECONDS = { terminal: 60, preview: 60, file: 300 } as const;
const WORKSPACE = '/workspace';

export interface GrantsOptions {
  /** Loads (or makes) the signing key; asked once, at the first grant minted or checked. */
  loadKey: () => Promise<Buffer>;
  generations: GrantGenerations;
  /** Exact origins whose pages may open a terminal with a ticket. */
  allowedOrigins: readonly string[];
  previewDomain?: string;
  previewPublicPort?: number;
  previewHttps: boolean;
  /** How long a preview origin's cookie may live; revocation and the session's end cut it short. */
  previewCookieSeconds: number;
  now?: () => number;
}

/** What a checked token must be for: its session, its kind, and the port of a preview origin. */
export interface GrantExpectation {
  sessionId: string;
  kind: TokenKind;
  port?: number;
}

/** Something opened with a grant that revocation must close: a WebSocket, a preview connection. */
type Closer = () => void;

/**
 * Mints, checks and revokes the grants a browser uses to reach its own session: terminal tickets (one socket,
 * once), preview sign-ins (one port's origin) and file links (one file, for minutes). A check says exactly why it
 * refuses, and never looks at any session but the one the URL names.
 */
export class Grants {
  readonly #now: () => number;
  readonly #used = new Map<string, number>();
  readonly #open = new Map<string, Set<Closer>>();
  #nextSweep = 0;
  #key: Promise<Buffer> | undefined;

  constructor(private readonly options: GrantsOptions) {
    this.#now = options.now ?? Date.now;
  }

  /** A grant for the session, as the URL a browser opens. `base` is where browsers reach the controller. */
  async mint(sessionId: string, request: GrantRequest, base: string): Promise<GrantResponse> {
    const ttl = Math.min(request.ttl_seconds ?? MAX_GRANT_TTL_SECONDS[request.capability], MAX_GRANT_TTL_SECONDS[request.capability]);
    const exp = this.#now() + ttl * 1000;
    const claims: GrantClaims = { v: 1, cap: request.capability, sid: sessionId, exp, jti: newId(), gen: '' };
    let urlOf: (token: string) => string;
    switch (request.capability) {
      case 'terminal': {
        if (request.port !== undefined || request.path !== undefined) throw invalid('a terminal grant takes no port or path');
        if (request.terminal_id) claims.tid = request.terminal_id;
        const id = request.terminal_id;
        urlOf = (ticket) =>
          `${base.replace(/^http/, 'ws')}${sessionPath(sessionId)}/terminal/ws?${new URLSearchParams(id ? { ticket, id } : { ticket })}`;
        break;
      }
      case 'preview': {
        if (!this.options.previewDomain) throw new AppError('PREVIEWS_OFF', 'previews are off: the runner has no PREVIEW_DOMAIN');
        claims.port = checkPort(request.port);
        const next = request.path ?? '/';
        if (!isLocalPath(next)) throw invalid('path of a preview grant is the page to open: a path starting with one /');
        const origin = this.previewOrigin(sessionId, claims.port, new URL(base).port);
        urlOf = (ticket) => `${origin}${ControllerRoute.previewAuth}?${new URLSearchParams({ ticket, next })}`;
        break;
      }
      case 'file': {
        if (request.port !== undefined) throw invalid('a file grant takes no port');
        claims.path = resolveWorkspacePath(request.path);
        urlOf = (token) => `${base}${sessionPath(sessionId)}/download?${new URLSearchParams({ token })}`;
        break;
      }
    }
    claims.gen = await this.options.generations.ensure(sessionId);
    return { url: urlOf(signGrant(await this.#signingKey(), claims)), capability: request.capability, expires_at: new Date(exp).toISOString() };
  }

  /**
   * `{scheme}://{port}-{session}.{PREVIEW_DOMAIN}[:port]`: previews are served on the controller's listener, so their
   * public port is the controller's own (`basePort`) unless PREVIEW_PUBLIC_PORT says otherwise.
   */
  previewOrigin(sessionId: string, port: number, basePort = ''): string {
    const { previewDomain, previewPublicPort, previewHttps } = this.options;
    const publicPort = previewPublicPort ? String(previewPublicPort) : basePort;
    return `${previewHttps ? 'https' : 'http'}://${port}-${sessionId}.${previewDomain}${publicPort ? `:${publicPort}` : ''}`;
  }

  /** Every earlier grant of the session stops passing, and what was opened with one is closed. */
  async revoke(sessionId: string): Promise<void> {
    await this.options.generations.raise(sessionId);
    this.closeOpened(sessionId);
  }

  /** Closes the sockets and connections opened with the session's grants (revoked, or the session is gone). */
  closeOpened(sessionId: string): void {
    const open = this.#open.get(sessionId);
    this.#open.delete(sessionId);
    for (const close of open ?? []) close();
  }

  /** Remembers something opened with a grant of the session; the returned function forgets it. */
  track(sessionId: string, close: Closer): () => void {
    let open = this.#open.get(sessionId);
    if (!open) this.#open.set(sessionId, (open = new Set()));
    open.add(close);
    return () => {
      open.delete(close);
      if (open.size === 0 && this.#open.get(sessionId) === open) this.#open.delete(sessionId);
    };
  }

  /** The token's claims when it is a live grant of the expected kind for this session (and port); throws why not. */
  async check(token: string | undefined, expected: GrantExpectation): Promise<GrantClaims> {
    if (!token) throw new AppError('GRANT_MISSING', 'this URL needs a grant');
    const claims = readGrant(await this.#signingKey(), token);
    if (claims.sid !== expected.sessionId) throw new AppError('GRANT_WRONG_SESSION', 'the grant is for another session');
    if (claims.cap !== expected.kind) throw new AppError('GRANT_WRONG_CAPABILITY', `the grant is not a ${expected.kind} grant`);
    if (expected.port !== undefined && claims.port !== expected.port) throw new AppError('GRANT_WRONG_PORT', 'the grant is for another port');
    if (claims.exp <= this.#now()) throw new AppError('GRANT_EXPIRED', 'the grant has expired');
    if (claims.gen !== (await this.options.generations.current(expected.sessionId))) {
      throw new AppError('GRANT_REVOKED', 'the grant was revoked');
    }
    return claims;
  }

  /** Marks a one-time grant used; GRANT_USED if it already was. */
  consume(claims: GrantClaims): void {
    this.#sweepUsed();
    if (this.#used.has(claims.jti)) throw new AppError('GRANT_USED', 'the grant was already used');
    this.#used.set(claims.jti, claims.exp);
  }

  /**
   * A page's Origin may open a terminal: one of RUNNER_ALLOWED_ORIGINS exactly, the controller's own (its console:
   * the page's host is the `Host` the upgrade was sent to), or none (not a browser).
   */
  checkOrigin(origin: string | undefined, host: string | undefined): void {
    if (origin === undefined || this.options.allowedOrigins.includes(origin) || isOwnOrigin(origin, host)) return;
    throw new AppError('GRANT_WRONG_ORIGIN', 'this page may not open a terminal of the runner');
  }

  /** The cookie value a preview sign-in sets: valid on this session's port's origin until revoked or expired. */
  async previewCookie(claims: GrantClaims): Promise<{ value: string; maxAgeSeconds: number }> {
    const maxAgeSeconds = this.options.previewCookieSeconds;
    const cookie: GrantClaims = { ...claims, cap: 'preview_cookie', exp: this.#now() + maxAgeSeconds * 1000, jti: newId() };
    return { value: signGrant(await this.#signingKey(), cookie), maxAgeSeconds };
  }

  // Loaded when first needed: a controller that never grants leaves no key file behind.
  #signingKey(): Promise<Buffer> {
    this.#key ??= this.options.loadKey().catch((error: unknown) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }

  // Used ids are kept only while their grant could still pass.
  #sweepUsed(): void {
    const now = this.#now();
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + 60_000;
    for (const [jti, exp] of this.#used) if (exp <= now) this.#used.delete(jti);
  }
}

// A browser sets both headers itself: a page of another site names its own host in Origin, never the runner's.
// `null` (a sandboxed frame, a file) and anything but an http(s) origin are no page of the controller's.
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (!host || !URL.canParse(origin)) return false;
  const page = new URL(origin);
  return (page.protocol === 'http:' || page.protocol === 'https:') && page.origin === origin && page.host === host.toLowerCase();
}

function newId(): string {
  return randomBytes(16).toString('base64url');
}

function invalid(message: string): AppError {
  return new AppError('VALIDATION', message);
}

function checkPort(port: number | undefined): number {
  if (port === undefined) throw invalid('a preview grant needs a port');
  if (port < 1 || port > 65_535) throw new AppError('GRANT_PORT_OUT_OF_RANGE', 'port must be 1..65535');
  return port;
}

/** A path on this origin, never another origin: `/x`, not `//host`, `/\host` or `https://host`. */
export function isLocalPath(path: string): boolean {
  return /^\/(?![/\\])[^\s\\]*$/.test(path) && path.length <= 2048;
}

/** `/workspace/…` without `.`/`..` tricks; what a symlink points to is checked by the agent when the file is read. */
function resolveWorkspacePath(path: string | undefined): string {
  if (path === undefined) throw invalid('a file grant needs a path');
  if (path.includes('\0')) throw new AppError('INVALID_PATH', 'the path contains a NUL byte');
  const resolved = posix.resolve(WORKSPACE, path);
  if (resolved === WORKSPACE || !resolved.startsWith(`${WORKSPACE}/`)) {
    throw new AppError('PATH_OUTSIDE_WORKSPACE', `a file link names one file inside ${WORKSPACE}`);
  }
  return resolved;
}
