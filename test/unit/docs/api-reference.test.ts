import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { renderApiReference, type ReferenceDocument } from '../../../controller/openapi/reference-markdown.js';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from '../../helpers/controller-fakes.js';

const REFERENCE = new URL('../../../docs/api-reference.md', import.meta.url);
// UPDATE_API_REFERENCE=1 rewrites the page instead of comparing it.
const UPDATE = process.env.UPDATE_API_REFERENCE === '1';

describe('docs/api-reference.md', () => {
  let ctl: TestController | undefined;
  afterEach(async () => ctl?.close());

  it('is what the OpenAPI document says (regenerate: UPDATE_API_REFERENCE=1 npx vitest run test/unit/docs/api-reference.test.ts)', async () => {
    ctl = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
    const res = await ctl.app.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${CONTROLLER_TEST_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    const generated = renderApiReference(res.json() as ReferenceDocument);
    if (UPDATE) await writeFile(REFERENCE, generated);
    expect(await readFile(REFERENCE, 'utf8')).toBe(generated);
  });

  it('lists every operation with the codes it may answer', () => {
    const page = renderApiReference({
      paths: {
        '/sessions/{id}': {
          get: { summary: 'One | session', tags: ['sessions'], responses: { 200: { content: { 'application/json': {} } }, 404: { description: 'Error: SESSION_NOT_FOUND' } } },
        },
        '/health': { get: { summary: 'Health', tags: ['controller'], security: [], responses: { 200: {} } } },
      },
    });
    expect(page).toContain('| `GET /sessions/{id}` | One \\| session | — | 200 `application/json`<br>404 `SESSION_NOT_FOUND` |');
    expect(page).toContain('| `GET /health` | Health *(public)* | — | 200 |');
  });
});
