import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildImages } from '../helpers/controller-e2e.js';
import { dockerExec } from '../helpers/docker-exec.js';
import type { RequestOptions } from '../helpers/http-client.js';
import { clientFrame, sendRawFrames } from '../helpers/terminal-frames.js';
import { closeOf, openWebSocket, TerminalClient } from '../helpers/ws-client.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * Hostile requests through a real controller to a real session, table-driven. Each must be refused with a 4xx
 * and the project's error code, and carry nothing from outside the workspace; afterwards the controller and the
 * agent are the same processes as before, and nothing outside the workspace was created or changed.
 * The learner prepares the traps first, with an exec inside the session: symbolic links to the agent's token, /etc
 * and /, relative and dangling links, a loop, a FIFO, hard links.
 */

const ID = 'hostile';
const S = `/sessions/${ID}`;
const MiB = 1024 * 1024;
const SECRET = `rthard-secret-${randomBytes(8).toString('hex')}`;
// Fastify's default, and the agent's AGENT_BODY_LIMIT_BYTES default.
const CONTROLLER_BODY_LIMIT = 1 * MiB;
const AGENT_BODY_LIMIT = 64 * MiB;

interface HostileCase extends RequestOptions {
  name: string;
  method: string;
  path: string;
  status: number;
  code: string;
  /** Sent this many times, each answered alike (races show up only now and then). */
  repeat?: number;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const OCTET = { 'content-type': 'application/octet-stream' };
const pwned = { content: 'pwned' };
const exec = (name: string, body: unknown, status = 400, code = 'VALIDATION'): HostileCase => ({ name, method: 'POST', path: `${S}/exec`, body, status, code });
const create = (name: string, body: unknown, status = 400, code = 'VALIDATION'): HostileCase => ({ name, method: 'POST', path: '/sessions', body, status, code });
const run = (name: string, body: unknown): HostileCase => ({ name, method: 'POST', path: `${S}/run`, body, status: 400, code: 'VALIDATION' });

const cases: HostileCase[] = [
  // Tokens
  { name: 'no token', method: 'GET', path: '/sessions', auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'a wrong token', method: 'GET', path: '/sessions', auth: 'Bearer not-the-token-0123456789', status: 401, code: 'UNAUTHORIZED' },
  { name: 'an empty bearer', method: 'GET', path: '/sessions', auth: 'Bearer ', status: 401, code: 'UNAUTHORIZED' },
  { name: 'basic auth', method: 'GET', path: '/sessions', auth: 'Basic cm9vdDpyb290', status: 401, code: 'UNAUTHORIZED' },
  { name: 'the token in the query string', method: 'GET', path: '/sessions?token=x&access_token=x', auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'creating a session without a token', method: 'POST', path: '/sessions', body: { session_id: 'no-token' }, auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'deleting a session without a token', method: 'DELETE', path: S, auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'an exec without a token', method: 'POST', path: `${S}/exec`, body: { command: ['id'] }, auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'reading a file without a token', method: 'GET', path: `${S}/files/workspace/ok.txt`, auth: null, status: 401, code: 'UNAUTHORIZED' },
  { name: 'metrics without a token', method: 'GET', path: '/metrics', auth: null, status: 401, code: 'UNAUTHORIZED' },

  // Session ids and bodies of the controller's own routes
  create('an uppercase id', { session_id: 'UPPER' }),
  create('an id shaped like a flag', { session_id: '-rf' }),
  create('an id shaped like a long flag', { session_id: '--privileged' }),
  create('an id with ../', { session_id: '../escape' }),
  create('an id with a slash', { session_id: 'a/b' }),
  create('an id with a space', { session_id: 'a b' }),
  create('an empty id', { session_id: '' }),
  create('a 49-character id', { session_id: 'a'.repeat(49) }),
  create('a 5000-character id', { session_id: 'a'.repeat(5000) }),
  create('an id with a NUL byte', { session_id: 'a\u0000b' }),
  create('an id with non-ASCII letters', { session_id: 'séance' }),
  create('an id that is a number', { session_id: 123 }),
  create('an id that is null', { session_id: null }),
  create('an id that is an array', { session_id: ['x'] }),
  create('no id', {}),
  create('ttl_seconds as a string', { session_id: 'ttl-a', ttl_seconds: '60' }),
  create('a negative ttl_seconds', { session_id: 'ttl-b', ttl_seconds: -1 }),
  create('a zero ttl_seconds', { session_id: 'ttl-c', ttl_seconds: 0 }),
  create('a fractional ttl_seconds', { session_id: 'ttl-d', ttl_seconds: 1.5 }),
  create('a ttl_seconds past the maximum', { session_id: 'ttl-e', ttl_seconds: 1e12 }),
  create('a JSON array body', ['hostile']),
  create('a JSON null body', null),
  { name: 'a broken JSON body', method: 'POST', path: '/sessions', body: '{"session_id": "x"', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'an empty JSON body', method: 'POST', path: '/sessions', body: '', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'a 2 MiB session body', method: 'POST', path: '/sessions', body: Buffer.alloc(2 * CONTROLLER_BODY_LIMIT, 0x20), headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE' },
  create('the id of a session that exists', { session_id: ID }, 409, 'SESSION_EXISTS'),
  { name: 'GET an uppercase id', method: 'GET', path: '/sessions/UPPER', status: 400, code: 'VALIDATION' },
  { name: 'GET an id of %2e%2e', method: 'GET', path: '/sessions/%2e%2e', status: 400, code: 'VALIDATION' },
  { name: 'GET an id of a NUL byte', method: 'GET', path: '/sessions/%00', status: 400, code: 'VALIDATION' },
  { name: 'GET a session id with a malformed percent-encoding', method: 'GET', path: '/sessions/%E0%A4%A', status: 400, code: 'INVALID_PATH' },
  { name: 'GET a 5000-character id', method: 'GET', path: `/sessions/${'a'.repeat(5000)}`, status: 400, code: 'INVALID_PATH' },
  { name: 'DELETE an id shaped like a flag', method: 'DELETE', path: '/sessions/-rf', status: 400, code: 'VALIDATION' },
  { name: 'extend by a string', method: 'POST', path: `${S}/extend`, body: { ttl_seconds: 'forever' }, status: 400, code: 'VALIDATION' },
  { name: 'extend past the maximum', method: 'POST', path: `${S}/extend`, body: { ttl_seconds: 1e12 }, status: 400, code: 'VALIDATION' },
  { name: 'extend a session that does not exist', method: 'POST', path: '/sessions/nope/extend', body: { ttl_seconds: 60 }, status: 404, code: 'SESSION_NOT_FOUND' },

  // Session ids in proxied paths
  { name: 'exec in a session that does not exist', method: 'POST', path: '/sessions/nope/exec', body: { command: ['id'] }, status: 404, code: 'SESSION_NOT_FOUND' },
  { name: 'exec in an uppercase session id', method: 'POST', path: '/sessions/HOSTILE/exec', body: { command: ['id'] }, status: 404, code: 'SESSION_NOT_FOUND' },
  { name: 'exec in a session id of ..%2f', method: 'POST', path: `/sessions/..%2f${ID}/exec`, body: { command: ['id'] }, status: 404, code: 'SESSION_NOT_FOUND' },
  { name: 'files of a session id with a NUL byte', method: 'GET', path: `/sessions/${ID}%00/files`, status: 404, code: 'SESSION_NOT_FOUND' },
  { name: 'exec in a 5000-character session id', method: 'POST', path: `/sessions/${'a'.repeat(5000)}/exec`, body: { command: ['id'] }, status: 400, code: 'INVALID_PATH' },
  { name: 'a path that climbs out of the session', method: 'GET', path: `${S}/../../etc/passwd`, status: 404, code: 'ROUTE_NOT_FOUND' },

  // Reading files
  { name: 'GET literal ../', method: 'GET', path: `${S}/files/workspace/../../etc/passwd`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET %2e%2e', method: 'GET', path: `${S}/files/workspace/%2e%2e/etc/passwd`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET %2E%2E%2F in one segment', method: 'GET', path: `${S}/files/workspace/%2E%2E%2Fetc%2Fpasswd`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET encoded slashes', method: 'GET', path: `${S}/files/workspace/sub%2f..%2f..%2fetc%2fpasswd`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET a double slash', method: 'GET', path: `${S}/files/workspace//etc/passwd`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET /etc/passwd', method: 'GET', path: `${S}/files/etc/passwd`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: "GET the agent's token file", method: 'GET', path: `${S}/files/run/runner/token`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: "GET the agent's environment", method: 'GET', path: `${S}/files/proc/1/environ`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET /proc/self/environ', method: 'GET', path: `${S}/files/proc/self/environ`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET a sibling folder by prefix', method: 'GET', path: `${S}/files/workspace-evil/x`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET a NUL byte', method: 'GET', path: `${S}/files/workspace/ok.txt%00.png`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET an over-long path', method: 'GET', path: `${S}/files/workspace/${'a/'.repeat(2100)}x`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET an over-long name', method: 'GET', path: `${S}/files/workspace/${'a'.repeat(300)}`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET a malformed percent-encoding', method: 'GET', path: `${S}/files/workspace/%E0%A4%A`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET backslashes (names, not separators)', method: 'GET', path: `${S}/files/workspace/..%5c..%5cetc%5cpasswd`, status: 404, code: 'FILE_NOT_FOUND' },
  { name: "GET a learner's symlink to the token", method: 'GET', path: `${S}/files/workspace/link-token`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: "GET raw bytes through a learner's symlink to the token", method: 'GET', path: `${S}/files/workspace/link-token`, headers: { accept: 'application/octet-stream' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET a symlink to a root-only secret', method: 'GET', path: `${S}/files/workspace/link-secret`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a symlink to /etc', method: 'GET', path: `${S}/files/workspace/link-etc/passwd`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a symlink to /', method: 'GET', path: `${S}/files/workspace/link-root/etc/shadow`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a relative symlink up to /run/runner', method: 'GET', path: `${S}/files/workspace/rel-up/token`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET through a nested ../.. symlink', method: 'GET', path: `${S}/files/workspace/sub/up/run/runner/token`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET a dangling symlink outside', method: 'GET', path: `${S}/files/workspace/dangling`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'GET a symlink loop', method: 'GET', path: `${S}/files/workspace/loop`, status: 400, code: 'INVALID_PATH' },
  { name: 'GET a hard link', method: 'GET', path: `${S}/files/workspace/a-hard`, status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'GET raw bytes of a hard link', method: 'GET', path: `${S}/files/workspace/a-hard`, headers: { accept: 'application/octet-stream' }, status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'GET a FIFO (would block a reader)', method: 'GET', path: `${S}/files/workspace/fifo`, status: 400, code: 'INVALID_PATH' },

  // Writing files
  { name: 'PUT literal ../', method: 'PUT', path: `${S}/files/workspace/../../etc/rthard-pwned`, body: pwned, status: 400, code: 'INVALID_PATH' },
  { name: 'PUT /etc', method: 'PUT', path: `${S}/files/etc/rthard-pwned`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT /tmp', method: 'PUT', path: `${S}/files/tmp/rthard-pwned`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: "PUT the agent's token", method: 'PUT', path: `${S}/files/run/runner/token`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT through a symlink to a secret', method: 'PUT', path: `${S}/files/workspace/link-secret`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT raw bytes through a symlink to a secret', method: 'PUT', path: `${S}/files/workspace/link-secret`, body: Buffer.from('pwned'), headers: OCTET, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT through a symlink to /etc', method: 'PUT', path: `${S}/files/workspace/link-etc/rthard-pwned`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT into a symlinked folder outside', method: 'PUT', path: `${S}/files/workspace/link-outdir/rthard-pwned`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT creating the target of a dangling symlink', method: 'PUT', path: `${S}/files/workspace/dangling`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT creating parents through a dangling symlink', method: 'PUT', path: `${S}/files/workspace/dangling/a/b`, body: pwned, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'PUT onto a hard link', method: 'PUT', path: `${S}/files/workspace/a-hard`, body: pwned, status: 403, code: 'HARD_LINK_REFUSED' },
  { name: 'PUT a NUL byte', method: 'PUT', path: `${S}/files/workspace/a%00b`, body: pwned, status: 400, code: 'INVALID_PATH' },
  { name: 'PUT onto the workspace root', method: 'PUT', path: `${S}/files/workspace`, body: pwned, status: 409, code: 'IS_A_DIRECTORY' },
  { name: 'PUT content of the wrong type', method: 'PUT', path: `${S}/files/workspace/new.txt`, body: { content: 5 }, status: 400, code: 'VALIDATION' },
  { name: 'PUT with a mode field', method: 'PUT', path: `${S}/files/workspace/new.txt`, body: { content: 'x', mode: '4755' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT invalid base64', method: 'PUT', path: `${S}/files/workspace/new.txt`, body: { content: '@@@@', encoding: 'base64' }, status: 400, code: 'VALIDATION' },
  { name: 'PUT broken JSON', method: 'PUT', path: `${S}/files/workspace/new.txt`, body: '{"content": "x"', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'PUT a text/plain body', method: 'PUT', path: `${S}/files/workspace/new.txt`, body: 'x', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'PUT a body past the limit', method: 'PUT', path: `${S}/files/workspace/big.bin`, body: Buffer.alloc(AGENT_BODY_LIMIT + MiB), headers: OCTET, status: 413, code: 'PAYLOAD_TOO_LARGE', repeat: 5 },
  { name: 'PUT a chunked body past the limit', method: 'PUT', path: `${S}/files/workspace/big.bin`, body: Buffer.alloc(AGENT_BODY_LIMIT + MiB), headers: OCTET, chunked: true, status: 413, code: 'PAYLOAD_TOO_LARGE', repeat: 5 },

  // Deleting, listing, mkdir, move
  { name: 'DELETE the workspace root', method: 'DELETE', path: `${S}/files/workspace`, status: 403, code: 'PERMISSION_DENIED' },
  { name: 'DELETE /etc/passwd', method: 'DELETE', path: `${S}/files/etc/passwd`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'DELETE through a symlink to /etc', method: 'DELETE', path: `${S}/files/workspace/link-etc/passwd`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: "DELETE the token through a relative symlink", method: 'DELETE', path: `${S}/files/workspace/rel-up/token`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'DELETE literal ../', method: 'DELETE', path: `${S}/files/workspace/../../etc/passwd`, status: 400, code: 'INVALID_PATH' },
  { name: 'list /', method: 'GET', path: `${S}/files?path=/`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list /run/runner', method: 'GET', path: `${S}/files?path=/run/runner`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list ../', method: 'GET', path: `${S}/files?path=../`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list through a symlink to /', method: 'GET', path: `${S}/files?path=/workspace/link-root`, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'list a NUL byte', method: 'GET', path: `${S}/files?path=%00`, status: 400, code: 'INVALID_PATH' },
  { name: 'list deeper than allowed', method: 'GET', path: `${S}/files?depth=11`, status: 400, code: 'VALIDATION' },
  { name: 'list a depth that is not a number', method: 'GET', path: `${S}/files?depth=all`, status: 400, code: 'VALIDATION' },
  { name: 'mkdir in /etc', method: 'POST', path: `${S}/files/mkdir`, body: { path: '/etc/rthard-pwned' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir through a symlinked folder outside', method: 'POST', path: `${S}/files/mkdir`, body: { path: 'link-outdir/rthard-pwned' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'mkdir a path that is a number', method: 'POST', path: `${S}/files/mkdir`, body: { path: 5 }, status: 400, code: 'VALIDATION' },
  { name: 'move /etc/passwd into the workspace', method: 'POST', path: `${S}/files/move`, body: { from: '../etc/passwd', to: 'stolen' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move a file to /etc', method: 'POST', path: `${S}/files/move`, body: { from: 'ok.txt', to: '/etc/rthard-pwned' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move a file into a symlinked folder outside', method: 'POST', path: `${S}/files/move`, body: { from: 'ok.txt', to: 'link-outdir/rthard-pwned' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'move with a string for overwrite', method: 'POST', path: `${S}/files/move`, body: { from: 'ok.txt', to: 'x', overwrite: 'yes' }, status: 400, code: 'VALIDATION' },

  // Exec bodies
  exec('a command that is a string', { command: 'id' }),
  exec('an empty command', { command: [] }),
  exec('an empty program', { command: [''] }),
  exec('a command of numbers', { command: [1, 2] }),
  exec('a NUL byte in an argument', { command: ['echo', 'a\u0000b'] }),
  exec('a NUL byte in the workdir', { command: ['id'], workdir: '/workspace/\u0000' }),
  exec('a workdir through a symlink to /etc', { command: ['id'], workdir: '/workspace/link-etc' }, 403, 'PATH_OUTSIDE_WORKSPACE'),
  exec('an invalid variable name', { command: ['id'], env: { 'A=B': 'x' } }),
  exec('a NUL byte in a variable', { command: ['id'], env: { A: 'a\u0000b' } }),
  exec('a zero timeout', { command: ['id'], timeout_seconds: 0 }),
  exec('a timeout past the maximum', { command: ['id'], timeout_seconds: 1e9 }),
  exec('a timeout as a string', { command: ['id'], timeout_seconds: '10' }),
  exec('stdin that is a number', { command: ['cat'], stdin: 5 }),
  exec('an exec body of JSON null', null),
  { name: 'exec with broken JSON', method: 'POST', path: `${S}/exec`, body: '{"command": ["id"]', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'exec with an empty JSON body', method: 'POST', path: `${S}/exec`, body: '', headers: JSON_TYPE, status: 400, code: 'INVALID_JSON' },
  { name: 'exec with a body past the limit', method: 'POST', path: `${S}/exec`, body: { command: ['true'], stdin: 'x'.repeat(AGENT_BODY_LIMIT + MiB) }, status: 413, code: 'PAYLOAD_TOO_LARGE', repeat: 5 },
  {
    name: 'exec with a chunked body past the limit',
    method: 'POST',
    path: `${S}/exec`,
    body: Buffer.from(JSON.stringify({ command: ['true'], stdin: 'x'.repeat(AGENT_BODY_LIMIT + MiB) })),
    headers: JSON_TYPE,
    chunked: true,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    repeat: 5,
  },
  { ...exec('a stream exec with a command that is a string', { command: 'id' }), path: `${S}/exec/stream` },

  // Docker: names and references shaped like flags, paths outside
  run('an image shaped like a flag', { image: '--privileged' }),
  run('an image that mounts the root', { image: '-v=/:/host' }),
  run('an image with a flag after a space', { image: 'runner-busybox --rm' }),
  run('an uppercase image', { image: 'BUSYBOX' }),
  run('an empty image', { image: '' }),
  run('a container name shaped like a flag', { image: 'runner-busybox', name: '--rm' }),
  run('a container name with a slash', { image: 'runner-busybox', name: 'a/b' }),
  run('a port shaped like a flag', { image: 'runner-busybox', ports: ['-p'] }),
  run('port 0', { image: 'runner-busybox', ports: ['0:80'] }),
  run('a port range', { image: 'runner-busybox', ports: ['1-100:1-100'] }),
  run('a NUL byte in the command', { image: 'runner-busybox', command: ['sh', '\u0000'] }),
  run('a relative workdir', { image: 'runner-busybox', workdir: 'tmp' }),
  { name: 'run an image the daemon does not have', method: 'POST', path: `${S}/run`, body: { image: 'not-here:latest' }, status: 404, code: 'IMAGE_NOT_FOUND' },
  { name: 'stop a container name shaped like a flag', method: 'POST', path: `${S}/stop`, body: { container_name: '-f' }, status: 400, code: 'VALIDATION' },
  { name: 'stop --all', method: 'POST', path: `${S}/stop`, body: { container_name: '--all' }, status: 400, code: 'VALIDATION' },
  { name: 'stop with a negative timeout', method: 'POST', path: `${S}/stop`, body: { container_name: 'x', timeout: -1 }, status: 400, code: 'VALIDATION' },
  { name: 'logs of a container named --follow', method: 'GET', path: `${S}/containers/--follow/logs`, status: 400, code: 'VALIDATION' },
  { name: 'logs with a tail that is not a number', method: 'GET', path: `${S}/containers/x/logs?tail=all`, status: 400, code: 'VALIDATION' },
  { name: 'build a tag shaped like a flag', method: 'POST', path: `${S}/build`, body: { image_tag: '--force-rm' }, status: 400, code: 'VALIDATION' },
  { name: 'build an uppercase tag', method: 'POST', path: `${S}/build`, body: { image_tag: 'App' }, status: 400, code: 'VALIDATION' },
  { name: 'build a context of /etc', method: 'POST', path: `${S}/build`, body: { image_tag: 'x', context_path: '/etc' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'build a context through a symlink to /', method: 'POST', path: `${S}/build`, body: { image_tag: 'x', context_path: 'link-root' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'build the token as a Dockerfile', method: 'POST', path: `${S}/build`, body: { image_tag: 'x', dockerfile_path: '../../run/runner/token' }, status: 403, code: 'PATH_OUTSIDE_WORKSPACE' },
  { name: 'build with a NUL byte in a build arg', method: 'POST', path: `${S}/build`, body: { image_tag: 'x', build_args: { A: '\u0000' } }, status: 400, code: 'VALIDATION' },

  // Terminals and ports over plain HTTP
  { name: 'resize a terminal id with ../', method: 'POST', path: `${S}/terminals/..%2fx/resize`, body: { cols: 80, rows: 24 }, status: 400, code: 'VALIDATION' },
  { name: 'resize to 0 columns', method: 'POST', path: `${S}/terminals/t/resize`, body: { cols: 0, rows: 24 }, status: 400, code: 'VALIDATION' },
  { name: 'resize to a string', method: 'POST', path: `${S}/terminals/t/resize`, body: { cols: 'wide', rows: 24 }, status: 400, code: 'VALIDATION' },
  { name: 'delete a terminal id with a NUL byte', method: 'DELETE', path: `${S}/terminals/%00`, status: 400, code: 'VALIDATION' },
  { name: 'the terminal WebSocket over plain HTTP', method: 'GET', path: `${S}/terminal/ws`, status: 426, code: 'UPGRADE_REQUIRED' },
  { name: 'port 0 of a session', method: 'GET', path: `${S}/ports/0/`, status: 400, code: 'VALIDATION' },
  { name: 'port 99999 of a session', method: 'GET', path: `${S}/ports/99999/`, status: 400, code: 'VALIDATION' },
  { name: 'a port that is not a number', method: 'GET', path: `${S}/ports/ssh/`, status: 400, code: 'VALIDATION' },

  // Malformed HTTP
  { name: 'a 20 KiB header', method: 'GET', path: `${S}/health`, headers: { 'x-junk': 'a'.repeat(20 * 1024) }, status: 431, code: 'HEADERS_TOO_LARGE' },
  { name: 'a Content-Length that is not a number', method: 'POST', path: `${S}/exec`, headers: { 'content-length': 'abc', ...JSON_TYPE }, status: 400, code: 'VALIDATION' },
];

interface WsCase {
  name: string;
  path: string;
  auth: 'none' | 'wrong' | 'good';
  /** Refused before the upgrade with this HTTP status and code... */
  status?: number;
  code?: string;
  /** ...or upgraded, then closed with this close code and a reason starting with `reason`. */
  closeCode?: number;
  reason?: string;
}

const wsCases: WsCase[] = [
  { name: 'terminal without a token', path: `${S}/terminal/ws`, auth: 'none', status: 401, code: 'UNAUTHORIZED' },
  { name: 'terminal with a wrong token', path: `${S}/terminal/ws`, auth: 'wrong', status: 401, code: 'UNAUTHORIZED' },
  { name: 'watch without a token', path: `${S}/watch/ws`, auth: 'none', status: 401, code: 'UNAUTHORIZED' },
  { name: 'terminal of a session that does not exist', path: '/sessions/nope/terminal/ws', auth: 'good', status: 404, code: 'SESSION_NOT_FOUND' },
  { name: 'terminal id with ../', path: `${S}/terminal/ws?id=..%2F..%2Fx`, auth: 'good', closeCode: 4400, reason: 'VALIDATION' },
  { name: 'terminal id of 65 characters', path: `${S}/terminal/ws?id=${'a'.repeat(65)}`, auth: 'good', closeCode: 4400, reason: 'VALIDATION' },
  { name: 'terminal of 0 columns', path: `${S}/terminal/ws?cols=0`, auth: 'good', closeCode: 4400, reason: 'VALIDATION' },
  { name: 'terminal rows that are not a number', path: `${S}/terminal/ws?rows=tall`, auth: 'good', closeCode: 4400, reason: 'VALIDATION' },
];

interface FrameCase {
  name: string;
  bytes: Buffer;
  closeCode: number;
}

// RFC 6455 close codes: 1002 protocol error, 1007 invalid payload data, 1009 message too big.
const frameCases: FrameCase[] = [
  { name: 'a text frame of invalid UTF-8', bytes: clientFrame(0x1, Buffer.from([0xc3, 0x28, 0xff])), closeCode: 1007 },
  { name: 'an unmasked client frame', bytes: clientFrame(0x1, Buffer.from('hi'), { masked: false }), closeCode: 1002 },
  { name: 'reserved bits set', bytes: clientFrame(0x1, Buffer.from('hi'), { rsv: 0x7 }), closeCode: 1002 },
  { name: 'a reserved opcode', bytes: clientFrame(0x3, Buffer.from('hi')), closeCode: 1002 },
  { name: 'a ping of 200 bytes', bytes: clientFrame(0x9, Buffer.alloc(200)), closeCode: 1002 },
  { name: 'a fragmented ping', bytes: clientFrame(0x9, Buffer.from('x'), { fin: false }), closeCode: 1002 },
  { name: 'a continuation with nothing to continue', bytes: clientFrame(0x0, Buffer.from('x')), closeCode: 1002 },
  { name: 'a frame announcing 2^63 bytes', bytes: Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]), closeCode: 1009 },
  { name: 'a frame over the 1 MiB limit', bytes: clientFrame(0x2, Buffer.alloc(MiB + 1)), closeCode: 1009 },
  { name: 'an HTTP request instead of frames', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), closeCode: 1002 },
];

// The HTTP cases with bodies up to 1 MiB, to send all at once; the larger ones (up to 65 MiB each) go alone.
const burst = cases.filter((c) => (Buffer.isBuffer(c.body) || typeof c.body === 'string' ? c.body.length : JSON.stringify(c.body ?? null).length) <= MiB);

describe.sequential('hostile input through the controller', () => {
  const ctl = hardeningController();
  let agentToken = '';
  let restartsBefore = 0;
  let controllerPid: number | undefined;

  beforeAll(async () => {
    await sweepHardeningLeftovers();
    await buildImages();
    await ctl.start();
    controllerPid = ctl.pid;
    await ctl.createSession(ID);
    agentToken = await ctl.agentToken(ID);
    const container = ctl.containerName(ID);
    // Root-only things outside the workspace, and a marker: anything newer than it outside the workspace was written.
    const root = await dockerExec(ctl.docker, container, [
      'sh',
      '-c',
      `umask 077 && echo ${SECRET} >/etc/rthard-secret && mkdir -p /opt/rthard-outside && echo ${SECRET} >/opt/rthard-outside/inside && chmod 755 /opt/rthard-outside && touch /etc/rthard-marker`,
    ]);
    expect(root.exitCode, root.output).toBe(0);
    // The learner's traps, made the way a learner would: with an exec inside the session.
    const traps = await ctl.exec(ID, [
      'cd /workspace',
      'echo ok >ok.txt && echo a >a && ln a a-hard',
      'ln -s /run/runner/token link-token && ln -s /etc/rthard-secret link-secret && ln -s /etc link-etc && ln -s / link-root',
      'ln -s /opt/rthard-outside link-outdir && ln -s ../run/runner rel-up && ln -s /tmp/rthard-created-by-agent dangling',
      'mkdir sub && ln -s ../.. sub/up && ln -s loop loop && mkfifo fifo',
      // Hard links out of the workspace: the workspace is its own mount, so the kernel refuses them (EXDEV).
      'echo learner >/tmp/learner-file && ! ln /tmp/learner-file hard-out 2>/dev/null && ! ln /etc/passwd passwd-hard 2>/dev/null',
    ].join(' && '));
    expect(traps.exit_code, traps.stderr).toBe(0);
    const info = await ctl.docker.getContainer(container).inspect();
    restartsBefore = info.RestartCount;
  });

  afterAll(async () => ctl.destroy());

  /** Fails when an answer carries the secrets outside the workspace: the root-only file, the agent's token, /etc/passwd or /etc/shadow. */
  const expectNothingLeaked = (name: string, text: string): void => {
    for (const secret of [SECRET, agentToken, 'root:x:0:0', 'root:*:']) expect(text.includes(secret), `${name} answered ${text.slice(0, 200)}`).toBe(false);
  };

  it.each(cases.map((c) => [c.name, c] as const))('refuses %s', async (_name, c) => {
    for (let attempt = 1; attempt <= (c.repeat ?? 1); attempt++) {
      const answer = await ctl.request(c.method, c.path, c);
      expectNothingLeaked(c.name, answer.text);
      const seen = { status: answer.status, code: answer.body?.code };
      expect(seen, `attempt ${attempt}: ${answer.error ?? ''} ${answer.text.slice(0, 300)}`).toEqual({ status: c.status, code: c.code });
      expect(ctl.alive, 'the controller is still running').toBe(true);
    }
  });

  it.each(wsCases.map((c) => [c.name, c] as const))('refuses the WebSocket %s', async (_name, c) => {
    const auth = c.auth === 'none' ? null : c.auth === 'wrong' ? 'Bearer wrong-token-0123456789' : `Bearer ${ctl.token}`;
    const outcome = await openWebSocket(ctl.port, c.path, auth);
    expectNothingLeaked(c.name, JSON.stringify(outcome.body ?? ''));
    if (c.status) {
      expect({ status: outcome.status, code: outcome.body?.code }).toEqual({ status: c.status, code: c.code });
    } else {
      expect(outcome.socket, `${outcome.status} ${JSON.stringify(outcome.body ?? outcome.error)}`).toBeDefined();
      const closed = await closeOf(outcome.socket!);
      expectNothingLeaked(c.name, closed.reason);
      expect(closed.code).toBe(c.closeCode);
      expect(closed.reason.startsWith(c.reason!), closed.reason).toBe(true);
    }
    expect(ctl.alive).toBe(true);
  });

  it.each(frameCases.map((c) => [c.name, c] as const))('closes a terminal sent %s with the RFC close code', async (_name, c) => {
    const outcome = await sendRawFrames(ctl.port, `${S}/terminal/ws?id=raw`, ctl.token, c.bytes);
    expect(outcome.handshake).toBe('HTTP/1.1 101 Switching Protocols');
    expect(outcome.closeCode).toBe(c.closeCode);
    expect(ctl.alive).toBe(true);
  });

  it(`refuses the ${burst.length} HTTP cases of small bodies sent all at once, each as when sent alone`, async () => {
    const answers = await Promise.all(burst.map((c) => ctl.request(c.method, c.path, c)));
    for (const [i, answer] of answers.entries()) expectNothingLeaked(burst[i]!.name, answer.text);
    const seen = answers.map((answer, i) => `${burst[i]!.name}: ${answer.status} ${answer.body?.code ?? answer.error}`);
    expect(seen).toEqual(burst.map((c) => `${c.name}: ${c.status} ${c.code}`));
    expect(ctl.alive).toBe(true);
  });

  it('passes binary and invalid UTF-8 input to the shell, which stays usable', async () => {
    const terminal = await TerminalClient.open(ctl, ID, 'junk');
    try {
      terminal.socket.send(Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, 0x1b, 0x5b, 0x3f, 0xed, 0xa0, 0x80]), { binary: true });
      terminal.socket.send(Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i)), { binary: true });
      // Ctrl-C gives a clean prompt back whatever the junk left on the line; bash drops what is typed in the same
      // breath, so the line is typed again until it runs.
      terminal.socket.send('\x03');
      await vi.waitFor(
        () => {
          terminal.type('echo still-""alive');
          expect(terminal.output, 'the shell runs a command again').toContain('still-alive');
        },
        { timeout: 30_000, interval: 1_000 },
      );
    } finally {
      terminal.close();
    }
  });

  it('cuts enormous command output at the limit and keeps answering', async () => {
    const flood = 'head -c 300000000 /dev/zero | tr "\\0" a';
    const whole = await ctl.exec(ID, flood);
    expect(whole).toMatchObject({ exit_code: 0, truncated: true });
    expect(whole.stdout.length).toBeLessThanOrEqual(1024 * 1024);
    // Raw: the size of the whole streamed body is the point.
    const stream = await ctl.request('POST', `${S}/exec/stream`, { body: { command: ['sh', '-c', flood] }, timeoutMs: 300_000 });
    expect(stream.status).toBe(200);
    const last = JSON.parse(stream.text.trim().split('\n').at(-1)!);
    expect(last).toMatchObject({ type: 'exit', exit_code: 0, truncated: true });
    expect(stream.text.length).toBeLessThan(4 * 1024 * 1024);
    // A flood on the terminal: the client reads it all, and the shell answers afterwards.
    const terminal = await TerminalClient.open(ctl, ID, 'flood');
    try {
      terminal.type('head -c 20000000 /dev/urandom | base64 -w 200; echo flood-""done');
      await terminal.waitFor('flood-done', 180_000);
      expect((await ctl.agentHealth(ID)).status).toBe(200);
    } finally {
      terminal.close();
    }
  });

  it('wrote nothing outside the workspace and left the traps as they were', async () => {
    const container = ctl.containerName(ID);
    // The container's own file system (the workspace and the inner daemon's data are other mounts); the learner's
    // own writable places are not the API's doing.
    const changed = await dockerExec(ctl.docker, container, [
      'sh',
      '-c',
      'find / -xdev \\( -path /tmp -o -path /var/tmp -o -path /home/learner -o -path /workspace \\) -prune -o -newer /etc/rthard-marker -print; find / -xdev -name "rthard-pwned*" -print; ls /tmp/rthard-created-by-agent 2>/dev/null; true',
    ]);
    expect(changed.output.trim().split('\n').filter(Boolean)).toEqual([]);
    const secret = await dockerExec(ctl.docker, container, ['sh', '-c', 'cat /etc/rthard-secret /opt/rthard-outside/inside; ls /opt/rthard-outside']);
    expect(secret.output).toBe(`${SECRET}\n${SECRET}\ninside\n`);
    expect(await ctl.agentToken(ID)).toBe(agentToken);
    const links = await ctl.exec(ID, 'cd /workspace && readlink link-token link-secret link-etc dangling && stat -c %h a-hard && test -p fifo && echo fifo');
    expect(links.stdout).toBe('/run/runner/token\n/etc/rthard-secret\n/etc\n/tmp/rthard-created-by-agent\n2\nfifo\n');
  });

  it('kept the controller and the agent running throughout', async () => {
    expect(ctl.alive).toBe(true);
    expect(ctl.pid).toBe(controllerPid);
    const info = await ctl.docker.getContainer(ctl.containerName(ID)).inspect();
    expect(info.RestartCount).toBe(restartsBefore);
    expect(info.State.Running).toBe(true);
    const { status, health } = await ctl.agentHealth(ID);
    expect(status).toBe(200);
    expect(health).toMatchObject({ status: 'healthy', daemon: { ready: true, restarts: 0 } });
    expect((await ctl.request('GET', '/health')).body).toMatchObject({ status: 'healthy', docker_available: true });
  });
});
