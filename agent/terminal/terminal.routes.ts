import type { FastifyPluginAsync } from 'fastify';
import type { RouteDeps } from '../app.js';

// Placeholder until the terminal module lands; its owner replaces this file.
export const terminalRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
