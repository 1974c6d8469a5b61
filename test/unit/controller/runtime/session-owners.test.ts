import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDockerClient } from '../../../../core/docker/docker-client.js';
import { parseControllerConfig } from '../../../../controller/config.js';
import { DockerSessionRuntime } from '../../../../controller/runtime/docker-session-runtime.js';
import { Label, MANAGED_BY } from '../../../../controller/runtime/labels.js';

const INSTANCE = 'owners-test';
const ours = { [Label.managedBy]: MANAGED_BY, [Label.instance]: INSTANCE };
// What the engine holds: a cold session, a warm pool member a session claimed (renamed, labelled by its pool id
// only), and one labelled as ours by no id at all (made by hand).
const LABELS: Record<string, Record<string, string>> = {
  'sess-cold': { ...ours, [Label.sessionId]: 'cold' },
  'sess-claimed': { ...ours, [Label.poolId]: '0123456789ab' },
  'sess-stray': { ...ours },
};

/** Just enough of the Engine API, on a unix socket, for whose-is-what; it records what it was asked. */
function fakeEngine(asked: string[]): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://engine');
    asked.push(`${req.method} ${url.pathname}`);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const named = /^\/containers\/([^/]+)\/json$/.exec(url.pathname);
    if (url.pathname === '/containers/json') {
      return json(200, Object.entries(LABELS).map(([name, labels]) => ({ Id: name, Names: [`/${name}`], State: 'running', Labels: labels })));
    }
    if (url.pathname === '/volumes') {
      const volumes = Object.entries(LABELS).map(([name, labels]) => ({ Name: `${name}-workspace`, Labels: labels }));
      // The filter by owner label, as the engine applies it.
      const wanted = (JSON.parse(url.searchParams.get('filters') ?? '{}') as { label?: string[] }).label ?? [];
      const matches = (labels: Record<string, string>, filter: string): boolean => {
        const [key, value] = filter.split('=');
        return labels[key!] === value;
      };
      return json(200, { Volumes: volumes.filter((v) => wanted.every((filter) => matches(v.Labels, filter))) });
    }
    if (named && req.method === 'GET') {
      const labels = LABELS[named[1]!];
      if (!labels) return json(404, { message: 'no such container' });
      return json(200, { Id: named[1], Name: `/${named[1]}`, Config: { Labels: labels }, State: { Status: 'running' }, NetworkSettings: { Networks: {} } });
    }
    if (req.method === 'DELETE') return json(204, {});
    json(404, { message: `not faked: ${req.method} ${url.pathname}` });
  });
}

describe("the Docker runtime's owners", () => {
  let dir: string;
  let engine: Server;
  let runtime: DockerSessionRuntime;
  const asked: string[] = [];

  beforeEach(async () => {
    asked.length = 0;
    dir = await mkdtemp(join(tmpdir(), 'rt-owners-'));
    const socket = join(dir, 'engine.sock');
    engine = fakeEngine(asked);
    await new Promise<void>((resolve) => engine.listen(socket, resolve));
    const config = parseControllerConfig({ SOCKETS_DIR: join(dir, 'sockets'), RUNNER_INSTANCE: INSTANCE });
    runtime = new DockerSessionRuntime(createDockerClient(`unix://${socket}`), config, pino({ level: 'silent' }));
  });
  afterEach(async () => {
    await new Promise((resolve) => engine.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('tells a session from a pool member by its labels, and lists nothing without an owner', async () => {
    expect((await runtime.listSessions()).map((c) => [c.containerName, c.owner])).toEqual([
      ['sess-cold', { kind: 'session', sessionId: 'cold' }],
      ['sess-claimed', { kind: 'pool', poolId: '0123456789ab' }],
    ]);
    expect((await runtime.listVolumes()).map((v) => [v.name, v.owner])).toEqual([
      ['sess-cold-workspace', { kind: 'session', sessionId: 'cold' }],
      ['sess-claimed-workspace', { kind: 'pool', poolId: '0123456789ab' }],
    ]);
    expect((await runtime.inspectSession('sess-stray'))?.owner).toBeNull();
  });

  it('removes a container under a name only for the owner its labels name', async () => {
    // A claimed member is not its session's by session id: only its pool id removes it.
    await runtime.removeSession({ kind: 'session', sessionId: 'claimed' }, 'sess-claimed');
    // A name that is not the owner's keeps its container; the owner's volumes go all the same.
    await runtime.removeSession({ kind: 'session', sessionId: 'cold' }, 'sess-stray');
    expect(asked.filter((a) => a.startsWith('DELETE'))).toEqual(['DELETE /volumes/sess-cold-workspace']);

    asked.length = 0;
    await runtime.removeSession({ kind: 'pool', poolId: '0123456789ab' }, 'sess-claimed');
    expect(asked.filter((a) => a.startsWith('DELETE'))).toEqual(['DELETE /containers/sess-claimed', 'DELETE /volumes/sess-claimed-workspace']);
  });
});
