import type { AddressInfo } from 'node:net';
import { RunnerClient } from '../../client/src/index.js';
import { SessionStore } from '../../controller/sessions/session-store.js';
import { CONTROLLER_TEST_TOKEN, createTestController, type TestController } from './controller-fakes.js';
import { createTestAgent, type TestAgent } from './test-agent.js';

export interface ClientStack {
  /** The controller's `http://127.0.0.1:<port>`. */
  url: string;
  client: RunnerClient;
  controller: TestController;
  /** Starts a real agent (no Docker) on the socket of a session the fake runtime created. */
  startAgent(sessionId: string): Promise<TestAgent>;
  close(): Promise<void>;
}

/**
 * A controller on a loopback port with the fake runtime, whose sessions' agents are real agent apps on the unix
 * sockets the controller proxies to: the whole HTTP path a client takes, without Docker.
 */
export async function createClientStack(): Promise<ClientStack> {
  const controller = await createTestController({ RUNNER_API_TOKEN: CONTROLLER_TEST_TOKEN });
  await controller.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(controller.app.server.address() as AddressInfo).port}`;
  const store = new SessionStore(controller.socketsDir, controller.config.instance);
  const agents: TestAgent[] = [];
  return {
    url,
    client: new RunnerClient({ baseUrl: url, token: CONTROLLER_TEST_TOKEN }),
    controller,
    async startAgent(sessionId) {
      const owner = { kind: 'session', sessionId } as const;
      const socketPath = store.agentSocketPath(owner);
      const agent = await createTestAgent({ AGENT_SOCKET: socketPath, AGENT_TOKEN_FILE: store.agentTokenFile(owner) });
      agents.push(agent);
      await agent.app.listen({ path: socketPath });
      return agent;
    },
    async close() {
      for (const agent of agents) await agent.close();
      await controller.close();
    },
  };
}
