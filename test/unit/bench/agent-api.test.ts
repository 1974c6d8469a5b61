import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunnerError, type RunnerClient } from '../../../client/src/index.js';
import { SessionStore } from '../../../controller/sessions/session-store.js';
import { AgentApi, benchClient } from '../../bench/agent-api.js';
import { CONTROLLER_TEST_TOKEN } from '../../helpers/controller-fakes.js';
import { createClientStack, type ClientStack } from '../../helpers/client-stack.js';

const SESSION = 'bench1';
const BYTES = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256);

describe("the bench's HTTP: the typed client on an undici pool, and the agent direct", () => {
  let stack: ClientStack;
  let bench: { runner: RunnerClient; close: () => Promise<void> };
  let direct: AgentApi;
  beforeAll(async () => {
    stack = await createClientStack();
    bench = benchClient(stack.url, CONTROLLER_TEST_TOKEN);
    expect(await bench.runner.createSession({ session_id: SESSION })).toMatchObject({ session_id: SESSION, status: 'running' });
    await stack.startAgent(SESSION);
    const store = new SessionStore(stack.controller.socketsDir, stack.controller.config.instance);
    const owner = { kind: 'session', sessionId: SESSION } as const;
    direct = AgentApi.direct(store.agentSocketPath(owner), (await readFile(store.agentTokenFile(owner), 'utf8')).trim());
  });
  afterAll(async () => {
    await bench?.close();
    await direct?.http.close();
    await stack?.close();
  });

  it('lists sessions and turns an error answer into a RunnerError', async () => {
    expect((await bench.runner.listSessions()).map((s) => s.session_id)).toEqual([SESSION]);
    const missing = await bench.runner.getSession('nope').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(RunnerError);
    expect(missing).toMatchObject({ code: 'SESSION_NOT_FOUND', status: 404 });
  });

  it('carries bytes both ways unchanged, through the controller and direct', async () => {
    await bench.runner.session(SESSION).writeFile('/workspace/via.bin', BYTES);
    await direct.writeFile('/workspace/direct.bin', BYTES);
    for (const path of ['/workspace/via.bin', '/workspace/direct.bin']) {
      expect(Buffer.compare(await bench.runner.session(SESSION).readBytes(path), BYTES)).toBe(0);
      expect(Buffer.compare(await direct.readBytes(path), BYTES)).toBe(0);
    }
  });

  it('answers the direct calls in the shape of the client', async () => {
    expect(await direct.mkdir('/workspace/dir')).toMatchObject({ path: '/workspace/dir' });
    expect(await direct.writeFile('/workspace/dir/a.txt', 'hello\n')).toEqual({ path: '/workspace/dir/a.txt', size: 6 });
    const viaController = await bench.runner.session(SESSION).listFiles('/workspace/dir');
    expect(await direct.listFiles('/workspace/dir')).toEqual(viaController);
    expect(viaController.entries.map((e) => e.name)).toEqual(['a.txt']);
  });

  it('streams an answer as it comes', async () => {
    const frames = [];
    for await (const frame of bench.runner.session(SESSION).watch()) {
      frames.push(frame);
      break;
    }
    expect(frames).toMatchObject([{ type: 'ready' }]);
  });

  it('deletes the session', async () => {
    expect(await bench.runner.deleteSession(SESSION)).toMatchObject({ found: true });
    expect(await bench.runner.listSessions()).toEqual([]);
  });
});
