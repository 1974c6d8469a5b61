import type { FastifyPluginAsync } from 'fastify';
import type { RouteDeps } from '../app.js';

// Placeholder until the docker module lands; its owner replaces this file.
export const dockerRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
