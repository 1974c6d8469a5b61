import { z } from 'zod';
import { ERROR_STATUS, ErrorBody, ErrorCode } from '../../shared/errors.js';
import { OCTET_STREAM, SESSION_ROUTE_ERRORS, type SessionRouteSpec } from '../../shared/session-api.js';

/** What the OpenAPI document says about a route beyond its zod schemas. */
export interface RouteDoc {
  summary: string;
  description?: string;
  tag: string;
  errors: readonly ErrorCode[];
  /** Served without the bearer token. */
  public?: boolean;
  /** The success answer, for a route without a zod response schema. */
  success?: { description: string; mediaType: string };
  /** The session route it proxies, for its streams, raw bodies and WebSocket. */
  session?: SessionRouteSpec;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Documentation of a route the controller serves on behalf of a session's agent. */
    sessionRoute?: SessionRouteSpec;
  }
}

const SESSION_ERRORS = ['UNAUTHORIZED', 'SESSION_NOT_FOUND', 'INTERNAL'] as const satisfies readonly ErrorCode[];

const GRANT_CHECKS = ['GRANT_MISSING', 'GRANT_TAMPERED', 'GRANT_EXPIRED', 'GRANT_USED', 'GRANT_REVOKED', 'GRANT_WRONG_SESSION', 'GRANT_WRONG_CAPABILITY'] as const satisfies readonly ErrorCode[];

/** Routes of the browser grants, by `METHOD url`. */
const GRANT_ROUTE_DOCS: Record<string, RouteDoc> = {
  'POST /sessions/:id/grants': {
    tag: 'grants',
    summary: 'Mint a browser grant: a terminal ticket, an app preview origin or a file link',
    errors: ['UNAUTHORIZED', 'VALIDATION', 'INVALID_JSON', 'GRANT_UNKNOWN_CAPABILITY', 'GRANT_PORT_OUT_OF_RANGE', 'PREVIEWS_OFF', 'PREVIEW_NOT_FOUND', ...SESSION_ERRORS],
  },
  'DELETE /sessions/:id/grants': { tag: 'grants', summary: "Revoke every grant of the session", errors: ['VALIDATION', ...SESSION_ERRORS] },
  'GET /sessions/:id/download': {
    tag: 'grants',
    summary: 'Download a file, or a folder as .tar.gz, with a file grant (no token)',
    errors: ['VALIDATION', ...GRANT_CHECKS, 'INVALID_PATH', 'PATH_OUTSIDE_WORKSPACE', 'FILE_NOT_FOUND', 'SESSION_NOT_FOUND', 'AGENT_UNAVAILABLE'],
    public: true,
    success: { description: 'The file, or the folder as .tar.gz', mediaType: 'application/octet-stream' },
  },
};

/** The preview origins' routes (`{port}-{session}.{PREVIEW_DOMAIN}` is routed here): a preview grant's cookie admits. */
export const PREVIEW_ORIGIN_DOC: RouteDoc = {
  tag: 'grants',
  summary: "A session's app on its own preview origin, admitted by a preview grant",
  errors: ['ROUTE_NOT_FOUND', ...GRANT_CHECKS, 'GRANT_WRONG_PORT', 'SESSION_NOT_FOUND', 'AGENT_UNAVAILABLE', 'PORT_UNAVAILABLE'],
  public: true,
  success: { description: "The app's answer, as it gave it", mediaType: '*/*' },
};

/** The controller's own routes, by `METHOD url` as Fastify registers them. */
export const CONTROLLER_ROUTE_DOCS: Record<string, RouteDoc> = {
  ...GRANT_ROUTE_DOCS,
  'GET /health': { tag: 'controller', summary: 'Health of the controller and its Docker engine', errors: [], public: true },
  'GET /metrics': {
    tag: 'controller',
    summary: 'Prometheus metrics',
    errors: ['UNAUTHORIZED'],
    success: { description: 'The text exposition format', mediaType: 'text/plain' },
  },
  'GET /openapi.json': {
    tag: 'controller',
    summary: 'This OpenAPI document',
    errors: ['UNAUTHORIZED'],
    success: { description: 'OpenAPI 3.1', mediaType: 'application/json' },
  },
  'GET /console': {
    tag: 'console',
    summary: 'The operator console (sign in with the API token)',
    errors: ['CONSOLE_NOT_BUILT'],
    public: true,
    success: { description: 'The page', mediaType: 'text/html' },
  },
  'GET /console/:file': {
    tag: 'console',
    summary: "The console's script and styles",
    errors: ['ROUTE_NOT_FOUND', 'CONSOLE_NOT_BUILT'],
    public: true,
    success: { description: 'A file of the page', mediaType: '*/*' },
  },
  'POST /sessions': {
    tag: 'sessions',
    summary: 'Create a session',
    errors: ['UNAUTHORIZED', 'VALIDATION', 'INVALID_JSON', 'SESSION_EXISTS', 'TOO_MANY_SESSIONS', 'SESSION_START_FAILED', 'HOST_DISK_FULL', 'DOCKER_UNAVAILABLE', 'INTERNAL'],
  },
  'GET /sessions': { tag: 'sessions', summary: 'List sessions, each with its usage', errors: ['UNAUTHORIZED', 'DOCKER_UNAVAILABLE', 'INTERNAL'] },
  'GET /sessions/:id': { tag: 'sessions', summary: 'Get a session with its usage (memory, CPU, processes, disk)', errors: ['VALIDATION', ...SESSION_ERRORS] },
  'DELETE /sessions/:id': {
    tag: 'sessions',
    summary: 'Delete a session: its container and volumes (idempotent)',
    errors: ['UNAUTHORIZED', 'VALIDATION', 'DOCKER_UNAVAILABLE', 'INTERNAL'],
  },
  'POST /sessions/:id/extend': {
    tag: 'sessions',
    summary: 'Set the session to expire ttl_seconds from now',
    errors: ['VALIDATION', 'INVALID_JSON', ...SESSION_ERRORS],
  },
};

/** The preview routes: any method, to a server listening on a port inside the session. */
export const PORT_ROUTE_DOC: RouteDoc = {
  tag: 'preview',
  summary: 'A server listening on a port inside the session (HTTP or WebSocket), proxied as it answers',
  description: 'The upstream sees `X-Forwarded-Prefix: /sessions/{id}/ports/{port}`. Any method; any answer of the upstream.',
  errors: [...SESSION_ROUTE_ERRORS, 'VALIDATION', 'PORT_UNAVAILABLE'],
  success: { description: "The upstream's answer, as it gave it", mediaType: '*/*' },
};

/** The documentation of a proxied session route. */
export function sessionRouteDoc(spec: SessionRouteSpec): RouteDoc {
  const errors = [...new Set<ErrorCode>([...SESSION_ROUTE_ERRORS, ...spec.errors])];
  return { tag: spec.tag, summary: spec.summary, description: spec.description, errors, session: spec };
}

const binary = { type: 'string', format: 'binary' } as const;

/** JSON Schema of the error body, its `code` narrowed to the given codes. */
function errorBodySchema(codes: readonly ErrorCode[]): unknown {
  const narrowed = ErrorBody.extend({ code: ErrorCode.extract(codes as [ErrorCode, ...ErrorCode[]]) });
  return withoutDialect(z.toJSONSchema(narrowed, { io: 'output' }));
}

/** A zod schema as JSON Schema for a media type object (no `$schema`: OpenAPI 3.1 sets the dialect). */
export function jsonSchemaOf(schema: z.ZodType): unknown {
  return withoutDialect(z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }));
}

function withoutDialect(schema: object): unknown {
  const { $schema: _dialect, ...rest } = schema as Record<string, unknown>;
  return rest;
}

/** The success response of a route documented by hand. */
export function successResponse(success: NonNullable<RouteDoc['success']>): Record<string, unknown> {
  return { 200: { description: success.description, content: { [success.mediaType]: { schema: {} } } } };
}

/** One response per status, each listing the codes it may carry. */
export function errorResponses(codes: readonly ErrorCode[]): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_STATUS[code], [...(byStatus.get(ERROR_STATUS[code]) ?? []), code]);
  const responses: Record<string, unknown> = {};
  for (const [status, statusCodes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[status] = {
      description: `Error: ${statusCodes.join(', ')}`,
      content: { 'application/json': { schema: errorBodySchema(statusCodes) } },
    };
  }
  return responses;
}

/** Success responses of a session route that zod alone does not say: streams, raw bytes, WebSocket, no content. */
export function sessionResponses(spec: SessionRouteSpec, zodResponses: Record<string, unknown>): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, schema] of Object.entries(zodResponses)) {
    const content: Record<string, unknown> = { 'application/json': { schema } };
    if (spec.rawResponse) content[OCTET_STREAM] = { schema: binary };
    responses[status] = { description: 'Success', content };
  }
  if (spec.stream) {
    responses[200] = {
      description: `A stream: each ${spec.stream.mediaType === 'text/event-stream' ? 'event' : 'line'} is one JSON frame of this schema`,
      content: { [spec.stream.mediaType]: { schema: jsonSchemaOf(spec.stream.frame) } },
    };
  }
  if (spec.websocket) {
    responses[101] = {
      description: `Switching Protocols (WebSocket): ${spec.websocket.frames}`,
      ...(spec.websocket.frame ? { content: { 'application/json': { schema: jsonSchemaOf(spec.websocket.frame) } } } : { type: 'null' }),
    };
  }
  if (spec.binaryResponse) responses[200] = { description: 'The bytes', content: { [spec.binaryResponse]: { schema: binary } } };
  if (spec.noContent) responses[204] = { description: 'Done; no body', type: 'null' };
  return responses;
}

/** The request body of a session route: its JSON schema, and raw bytes where the route takes them. */
export function sessionRequestBody(spec: SessionRouteSpec, jsonBody: unknown): unknown {
  if (spec.binaryBody) return { content: { [spec.binaryBody]: { schema: binary } } };
  if (!spec.rawBody) return jsonBody;
  return { content: { 'application/json': { schema: jsonBody }, [OCTET_STREAM]: { schema: binary } } };
}
