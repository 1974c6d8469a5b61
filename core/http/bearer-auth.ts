import { readFile } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../shared/errors.js';

const MIN_TOKEN_LENGTH = 16;

export interface BearerAuthOptions {
  /** The expected token; no authentication at all when unset. */
  token: string | undefined;
  /**
   * Where the token came from, when a file: a request whose token does not match makes the server read it again.
   * The controller gives a session started ahead (the warm pool) its own token by rewriting the file, and from
   * then on only the new token is accepted.
   */
  tokenFile?: string;
  /** Routes served without a token (health checks of load balancers). */
  publicRoutes?: readonly string[];
  /** Whether an earlier check already let the request in with a credential of its own (a browser grant). */
  admittedOtherwise?: (request: FastifyRequest) => boolean;
}

/** Requires `Authorization: Bearer <token>` on every request but those to public routes, when a token is set. */
export function registerBearerAuth(
  app: FastifyInstance,
  { token, tokenFile, publicRoutes = [], admittedOtherwise }: BearerAuthOptions,
): void {
  if (!token) return;
  let expected = Buffer.from(`Bearer ${token}`);
  const matches = (given: Buffer): boolean => given.length === expected.length && timingSafeEqual(given, expected);
  app.addHook('onRequest', async (request) => {
    if (publicRoutes.includes(request.routeOptions.url ?? '')) return;
    if (admittedOtherwise?.(request)) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (matches(given)) return;
    if (tokenFile) {
      // A file gone or too short (a session being removed) keeps the token the server has.
      const current = await readFile(tokenFile, 'utf8').then((text) => text.trim(), () => '');
      if (current.length >= MIN_TOKEN_LENGTH) expected = Buffer.from(`Bearer ${current}`);
      if (matches(given)) return;
    }
    throw new AppError('UNAUTHORIZED', 'missing or wrong bearer token');
  });
}
