import type { FastifyPluginAsync } from 'fastify';
import type { RouteDeps } from '../app.js';

// Placeholder until the files module lands; its owner replaces this file.
export const filesRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
