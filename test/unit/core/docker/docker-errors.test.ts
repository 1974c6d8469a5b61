import { describe, expect, it } from 'vitest';
import { toDockerError, toUnavailableError } from '../../../../core/docker/docker-errors.js';

describe('daemon errors', () => {
  const daemon = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) x - ${message}`), { statusCode, json: { message } });
  const errno = (code: string, syscall?: string) => Object.assign(new Error(`${syscall ?? 'open'} ${code}`), { code, syscall });

  it.each([
    [errno('ENOENT', 'connect'), 'DOCKER_UNAVAILABLE'],
    [errno('EACCES', 'connect'), 'DOCKER_UNAVAILABLE'],
    [errno('ECONNREFUSED', 'connect'), 'DOCKER_UNAVAILABLE'],
    [errno('ECONNRESET'), 'DOCKER_UNAVAILABLE'],
    [errno('EPIPE'), 'DOCKER_UNAVAILABLE'],
    [errno('EHOSTUNREACH', 'connect'), 'DOCKER_UNAVAILABLE'],
    [daemon(404, 'No such image: x:1'), 'IMAGE_NOT_FOUND'],
    [daemon(404, 'No such container: x'), 'CONTAINER_NOT_FOUND'],
    [daemon(409, 'Conflict. The container name "/x" is already in use'), 'CONTAINER_CONFLICT'],
    [daemon(500, 'driver failed programming external connectivity: Bind for 0.0.0.0:8080 failed: port is already allocated'), 'PORT_IN_USE'],
    [daemon(400, 'invalid reference format'), 'VALIDATION'],
    [daemon(500, 'something broke'), 'DOCKER_ERROR'],
  ])('maps %s to %s', (error, code) => {
    expect(toDockerError(error).code).toBe(code);
  });

  it('does not take a missing or forbidden file outside the connection (a build context file) for the daemon being down', () => {
    expect(toDockerError(errno('ENOENT', 'open')).code).toBe('DOCKER_ERROR');
    expect(toDockerError(errno('EACCES', 'scandir')).code).toBe('DOCKER_ERROR');
  });

  it('names what a 404 means for the caller', () => {
    expect(toDockerError(daemon(404, 'network x not found'), 'IMAGE_NOT_FOUND').code).toBe('IMAGE_NOT_FOUND');
  });

  it('keeps the daemon message without the client prefix', () => {
    expect(toDockerError(Object.assign(new Error('(HTTP code 404) no such container - No such container: x '), { statusCode: 404 })).message).toBe(
      'No such container: x',
    );
  });

  it('says what could not be done when the daemon is unreachable', () => {
    const error = toUnavailableError(errno('ECONNREFUSED', 'connect'), 'list session containers');
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'DOCKER_UNAVAILABLE',
      message: 'the Docker daemon is not reachable (ECONNREFUSED): could not list session containers',
    });
  });
});
