import type { FastifyInstance, RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { ControllerRoute } from '../../shared/routes.js';
import { swaggerUiAssetsDir, swaggerUiLogo } from '../web-assets.js';
import { PREVIEW_ROUTE_PREFIX } from '../grants/preview-host.js';
import { CONTROLLER_ROUTE_DOCS, errorResponses, PORT_ROUTE_DOC, PREVIEW_ORIGIN_DOC, sessionRequestBody, sessionResponses, sessionRouteDoc, successResponse, type RouteDoc } from './route-docs.js';

/** Where the document and its reference page are served. */
export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PREFIX = '/docs';

/** The routes of the document and its page, to serve without a token when the operator makes them public. */
export const API_DOCS_ROUTES = [OPENAPI_PATH, DOCS_PREFIX, `${DOCS_PREFIX}/`, `${DOCS_PREFIX}/json`, `${DOCS_PREFIX}/static/*`, `${DOCS_PREFIX}/static/swagger-initializer.js`, `${DOCS_PREFIX}/static/index.html`];

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];

/** Fastify's route url in the document's spelling of its wildcard: `/files/*` → `/files/{path}`. */
export function documentedUrl(url: string): string {
  return url.replace(/\*$/, ':path');
}

/** The documentation of a registered route: its own, that of the session route it proxies, or none. */
export function routeDocOf(route: Pick<RouteOptions, 'url' | 'config'>, method: string): RouteDoc | undefined {
  if (route.config?.sessionRoute) return sessionRouteDoc(route.config.sessionRoute);
  if (route.url.startsWith(`${ControllerRoute.sessionProxyPrefix}ports/:port`)) return PORT_ROUTE_DOC;
  if (route.url.startsWith(PREVIEW_ROUTE_PREFIX)) return PREVIEW_ORIGIN_DOC;
  return CONTROLLER_ROUTE_DOCS[`${method} ${route.url}`];
}

/** jsonSchemaTransform, then what zod does not say: errors and their codes, streams, raw bodies, WebSocket answers. */
function transformRoute(input: TransformInput): ReturnType<typeof jsonSchemaTransform> {
  const result = jsonSchemaTransform(input);
  const schema = result.schema as Record<string, unknown> | undefined;
  const { route } = input as TransformInput & { route: RouteOptions };
  const method = Array.isArray(route.method) ? route.method[0]! : route.method;
  const doc = schema?.hide ? undefined : routeDocOf(route, method);
  if (!doc) return result;
  const responses = (schema?.response ?? {}) as Record<string, unknown>;
  const documented: Record<string, unknown> = {
    ...schema,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    ...(doc.public ? { security: [] } : {}),
    response: {
      ...(doc.success ? successResponse(doc.success) : {}),
      ...(doc.session ? sessionResponses(doc.session, responses) : responses),
      ...errorResponses(doc.errors),
    },
  };
  if (doc.session && (schema?.body || doc.session.binaryBody)) documented.body = sessionRequestBody(doc.session, schema?.body);
  return { schema: documented, url: documentedUrl(result.url) };
}

/** Registers the OpenAPI generator; call before any route is added, so that it sees them all. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Runner API',
        version: '1',
        description:
          'Isolated Docker-in-Docker sessions. Every error answers `{code, message, ...details}`; the codes each route may ' +
          'answer are listed under its responses. Everything below `/sessions/{id}/` is served by the session agent.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: transformRoute,
  });
  app.get(OPENAPI_PATH, { schema: { hide: false } }, async () => app.swagger());
}

/** Serves the reference page at /docs, its assets from the swagger-ui package (no CDN). */
export async function registerApiDocsPage(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    baseDir: swaggerUiAssetsDir(),
    logo: swaggerUiLogo(),
    staticCSP: true,
    // swagger-ui sets inline styles as it renders.
    transformStaticCSP: (header: string) => header.replace("style-src 'self' https:", "style-src 'self' https: 'unsafe-inline'"),
    uiConfig: { url: OPENAPI_PATH, deepLinking: true },
  });
}
