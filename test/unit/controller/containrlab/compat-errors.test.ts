import { describe, expect, it } from 'vitest';
import { compatBody, toCompatError } from '../../../../controller/containrlab/compat-errors.js';

describe('the flat API errors', () => {
  it('answers a session that is not running 409 and a path that leaves the workspace 400', () => {
    expect(toCompatError('SESSION_NOT_READY', 'not yet').statusCode).toBe(409);
    expect(toCompatError('AGENT_UNAVAILABLE', 'gone', undefined, 502).statusCode).toBe(409);
    expect(toCompatError('PATH_OUTSIDE_WORKSPACE', 'out', undefined, 403).statusCode).toBe(400);
    expect(toCompatError('IS_A_DIRECTORY', 'folder', undefined, 409).statusCode).toBe(400);
  });

  it('keeps the runner status otherwise, with {detail}', () => {
    const error = toCompatError('FILE_NOT_FOUND', 'no such file', undefined, 404);
    expect(error.statusCode).toBe(404);
    expect(error.body).toEqual({ detail: 'no such file' });
    expect(toCompatError('TOO_MANY_SESSIONS', 'full').statusCode).toBe(429);
  });

  it('puts a failure with logs both at the top level and under detail', () => {
    const error = toCompatError('BUILD_FAILED', 'docker build failed', ['Step 1/2', 'oops'], 422);
    expect(error.statusCode).toBe(422);
    expect(error.body).toEqual({
      detail: { error: 'docker build failed', logs: ['Step 1/2', 'oops'] },
      error: 'docker build failed',
      logs: ['Step 1/2', 'oops'],
    });
    expect(compatBody('plain')).toEqual({ detail: 'plain' });
  });
});
