import type { IncomingMessage } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { frameworkErrorOptions, registerErrorHandling, type ErrorMapper } from './error-handler.js';

export interface ServerOptions {
  /** A pino logger; none (silent) in tests. */
  logger?: FastifyBaseLogger;
  /** The largest request body accepted, in bytes (Fastify's default when unset). */
  bodyLimit?: number;
  /** The process's own error mapping, asked before an unknown error becomes INTERNAL. */
  mapError?: ErrorMapper;
  /** Routes a request by more than its path (the controller's preview origins, by Host); upgrades included. */
  rewriteUrl?: (req: IncomingMessage) => string;
  /** Fastify's two lines per request (arrival and answer); true unless set to false. Errors are logged either way. */
  logRequests?: boolean;
}

/** Fastify's own log lines but the two of every request that went well (on arrival, on answer). */
class ErrorsOnlyRequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error) super.requestCompleted(error, request, reply, metadata);
  }
}

type CompilersFactory = NonNullable<FastifyServerOptions['schemaController']>['compilersFactory'];
// Fastify types these factories for Ajv only; the zod compilers are what setValidatorCompiler takes.
const ZOD_COMPILERS = { buildValidator: () => validatorCompiler, buildSerializer: () => serializerCompiler } as unknown as CompilersFactory;

/**
 * A Fastify server as both processes need it: zod schemas validate and serialise, every error (also those raised
 * before routing) answers with the project's error body, and long session paths fit in a route parameter.
 */
export function createServer(options: ServerOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 4096 },
    ...frameworkErrorOptions(options.mapError),
    ...(options.rewriteUrl ? { rewriteUrl: options.rewriteUrl } : {}),
    ...(options.logRequests === false ? { logController: new ErrorsOnlyRequestLog() } : {}),
    // Zod validates and serialises every route: given here, Fastify never loads its own Ajv and fast-json-stringify
    // compilers (85 ms of CPU and 1.5 MiB of heap at every start of the agent), which setValidatorCompiler would not spare.
    schemaController: { compilersFactory: ZOD_COMPILERS },
  });
  registerErrorHandling(app, options.mapError);
  return app;
}
