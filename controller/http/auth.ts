import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../shared/errors.js';

/** Requires `Authorization: Bearer <token>` on every route but the public ones (health checks of load balancers). */
export function registerBearerAuth(app: FastifyInstance, token: string | undefined, publicRoutes: readonly string[]): void {
  if (!token) return;
  const expected = Buffer.from(`Bearer ${token}`);
  app.addHook('onRequest', async (request) => {
    if (publicRoutes.includes(request.routeOptions.url ?? '')) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AppError('UNAUTHORIZED', 'missing or wrong bearer token');
    }
  });
}
