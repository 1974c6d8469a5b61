import type { FastifyPluginAsync } from 'fastify';
import type { RouteDeps } from '../app.js';

// Placeholder until the watch module lands; its owner replaces this file.
export const watchRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
