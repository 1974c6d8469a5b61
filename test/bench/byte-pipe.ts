import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { AgentApi } from './agent-api.js';

// The relay, run by a Node process of its own as the controller is: every loopback TCP connection is piped both ways
// to the agent's unix socket, bytes unchanged, no HTTP parsed.
const RELAY = `
const net = require('node:net');
const server = net.createServer((client) => {
  // As Node's HTTP server does for the controller: no Nagle delay on small writes.
  client.setNoDelay(true);
  const agent = net.connect(process.argv[1]);
  client.pipe(agent).on('error', () => client.destroy());
  agent.pipe(client).on('error', () => agent.destroy());
  client.on('close', () => agent.destroy());
  agent.on('close', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/**
 * The least any proxy in a separate process costs on this machine: one more process and a loopback TCP connection
 * in front of the agent's socket, with no HTTP work at all. The floor the controller's proxy is measured against.
 */
export class BytePipe {
  readonly #child: ChildProcess;
  readonly api: Promise<AgentApi>;

  constructor(agentSocket: string, token: string) {
    const child = spawn(process.execPath, ['-e', RELAY, agentSocket], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.#child = child;
    this.api = (async () => {
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      return AgentApi.overTcp(`http://127.0.0.1:${Number(line)}`, token);
    })();
  }

  async close(): Promise<void> {
    await (await this.api).http.close();
    this.#child.kill();
  }
}
