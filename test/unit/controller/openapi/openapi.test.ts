import type { RouteOptions } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../../helpers/controller-fakes.js';
import { createTestAgent } from '../../../helpers/test-agent.js';
import { SESSION_ROUTES } from '../../../../shared/session-api.js';
import { ERROR_STATUS } from '../../../../shared/errors.js';

// Every route each app registers, seen through an onRoute hook on the server both processes create.
const registered = vi.hoisted(() => [] as RouteOptions[]);
vi.mock('../../../../core/http/server.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../../core/http/server.js')>();
  return {
    ...original,
    createServer: (...args: Parameters<typeof original.createServer>) => {
      const app = original.createServer(...args);
      app.addHook('onRoute', (route) => void registered.push(route));
      return app;
    },
  };
});

type Operations = Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>;
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Operations>;
}

/** `METHOD /path/{param}` of every route, as the document spells them (Fastify's HEAD twins of GET excluded). */
function operationsOfRoutes(routes: RouteOptions[]): string[] {
  return routes.flatMap((route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((method) => method !== 'HEAD');
    const path = route.url.replace(/\*$/, ':path').replace(/:([A-Za-z_]+)/g, '{$1}');
    return methods.map((method) => `${method} ${path}`);
  });
}

function operationsOfDocument(doc: OpenApiDocument): string[] {
  return Object.entries(doc.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
}

const auth = { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}` };

describe('the OpenAPI document', () => {
  let ctl: TestController | undefined;
  afterEach(async () => {
    await ctl?.close();
    ctl = undefined;
  });

  const loadDocument = async (): Promise<OpenApiDocument> => {
    registered.length = 0;
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    const res = await ctl.app.inject({ url: '/openapi.json', headers: auth });
    expect(res.statusCode).toBe(200);
    return res.json();
  };

  it('is a valid OpenAPI 3.1 document', async () => {
    const doc = await loadDocument();
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has every route the controller registered and nothing else', async () => {
    const doc = await loadDocument();
    // Not API: the reference page's own files, and the fallback that hands an unknown session path to its agent.
    const api = registered.filter((route) => !route.url.startsWith('/docs') && route.url !== '/sessions/:id/*');
    expect(operationsOfDocument(doc).sort()).toEqual([...new Set(operationsOfRoutes(api))].sort());
  });

  it("describes every route of the session agent below /sessions/{id}, and the agent serves no other", async () => {
    registered.length = 0;
    const agent = await createTestAgent();
    try {
      const agentOperations = operationsOfRoutes(registered);
      const described = operationsOfRoutes(SESSION_ROUTES.map((spec) => ({ method: spec.method, url: spec.path }) as RouteOptions));
      expect([...new Set(agentOperations)].sort()).toEqual(described.sort());
    } finally {
      await agent.close();
    }
    const doc = await loadDocument();
    for (const operation of operationsOfRoutes(SESSION_ROUTES.map((spec) => ({ method: spec.method, url: `/sessions/:id${spec.path}` }) as RouteOptions))) {
      expect(operationsOfDocument(doc), operation).toContain(operation);
    }
  });

  it('lists the error codes each route may answer, under the status that carries them', async () => {
    const doc = await loadDocument();
    const exec = doc.paths['/sessions/{id}/exec']!.post!;
    const notFound = JSON.stringify(exec.responses['404']);
    expect(notFound).toContain('SESSION_NOT_FOUND');
    expect(notFound).toContain('FILE_NOT_FOUND');
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const statuses = Object.keys(operation.responses);
        expect(statuses.some((status) => status < '400'), `${method} ${path} has a success answer`).toBe(true);
        // Every route says which errors it may answer: a new route needs its entry in controller/openapi/route-docs.ts.
        expect(statuses.some((status) => status >= '400'), `${method} ${path} lists its error codes`).toBe(true);
        // /health answers 503 with its own body when Docker is down: not an error body.
        for (const status of statuses.filter((s) => s >= '400' && !(path === '/health' && s === '503'))) {
          const codes = (operation.responses[status] as { content: { 'application/json': { schema: { properties: { code: { enum: string[] } } } } } })
            .content['application/json'].schema.properties.code.enum;
          for (const code of codes) expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS], `${method} ${path} ${code}`).toBe(Number(status));
        }
      }
    }
    expect(Object.keys(doc.paths['/health']!.get!.responses)).not.toContain('401');
  });

  it('describes streams by media type and WebSockets by their upgrade', async () => {
    const doc = await loadDocument();
    expect(Object.keys((doc.paths['/sessions/{id}/exec/stream']!.post!.responses['200'] as { content: object }).content)).toEqual(['application/x-ndjson']);
    expect(Object.keys((doc.paths['/sessions/{id}/watch']!.get!.responses['200'] as { content: object }).content)).toEqual(['text/event-stream']);
    expect(doc.paths['/sessions/{id}/terminal/ws']!.get!.responses['101']).toBeDefined();
    const write = doc.paths['/sessions/{id}/files/{path}']!.put!.requestBody as { content: object };
    expect(Object.keys(write.content).sort()).toEqual(['application/json', 'application/octet-stream']);
  });
});

describe('the API reference page', () => {
  let ctl: TestController | undefined;
  afterEach(async () => {
    await ctl?.close();
    ctl = undefined;
  });

  it('needs the token by default, like every route but /health', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    for (const url of ['/openapi.json', '/docs', '/docs/static/swagger-ui-bundle.js']) {
      expect((await ctl.app.inject({ url })).statusCode, url).toBe(401);
    }
    const page = await ctl.app.inject({ url: '/docs/', headers: auth });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
  });

  it('is public with PUBLIC_API_DOCS=true, its assets served locally, the rest of the API still closed', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN, PUBLIC_API_DOCS: 'true' });
    expect((await ctl.app.inject({ url: '/openapi.json' })).statusCode).toBe(200);
    const page = await ctl.app.inject({ url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toMatch(/https?:\/\/(?!localhost)[^"']*\.(js|css)/);
    for (const asset of page.body.matchAll(/(?:src|href)="\.\/([^"]+)"/g)) {
      expect((await ctl.app.inject({ url: `/docs/${asset[1]}` })).statusCode, asset[1]).toBe(200);
    }
    expect((await ctl.app.inject({ url: '/sessions' })).statusCode).toBe(401);
  });
});
