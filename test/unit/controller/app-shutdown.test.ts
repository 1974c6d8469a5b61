import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestController, type TestController } from '../../helpers/controller-fakes.js';
import { createTestAgent, type TestAgent } from '../../helpers/test-agent.js';

describe('shutdown', () => {
  let ctl: TestController | undefined;
  let agent: TestAgent | undefined;
  afterEach(async () => {
    await ctl?.close();
    await agent?.close();
  });

  it('closes WebSockets with 1001 going away and leaves the sessions running', async () => {
    ctl = await createTestController();
    await ctl.app.inject({ method: 'POST', url: '/sessions', payload: { session_id: 'ws' } });
    // A real agent where the session's would listen, with the token the controller gave the session.
    const agentDir = join(ctl.socketsDir, 'ws', 'agent');
    const token = await readFile(join(agentDir, 'token'), 'utf8');
    agent = await createTestAgent({ AGENT_TOKEN: token, AGENT_SOCKET: join(agentDir, 'agent.sock') });
    await agent.app.listen({ path: join(agentDir, 'agent.sock') });
    await ctl.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = ctl.app.server.address() as AddressInfo;

    const ws = new WebSocket(`ws://127.0.0.1:${port}/sessions/ws/terminal/ws`);
    await once(ws, 'open');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    await ctl.app.close();
    expect(await closed).toEqual({ code: 1001, reason: 'controller shutting down' });
    expect(ctl.runtime.containers.get('sess-ws')?.state).toBe('running');
    expect((await agent.app.inject({ url: '/health', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
  });
});
