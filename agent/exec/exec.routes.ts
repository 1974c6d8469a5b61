import type { FastifyPluginAsync } from 'fastify';
import type { RouteDeps } from '../app.js';

// Placeholder until the exec module lands; its owner replaces this file.
export const execRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
