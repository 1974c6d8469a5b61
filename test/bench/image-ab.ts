// Two session images side by side, one controller and one session each, `POST /exec` of `true` interleaved call by
// call between them, direct to each agent's socket and through each controller. What `npm run bench` cannot do:
// compare agent or image changes in the same run, on the same machine load. Prints p50 and p99 per side.
//   npx tsx test/bench/image-ab.ts --image-b TAG [--image-a runner-session:latest] [--rounds N] [--gap MS]
// Build B from another checkout first: `SESSION_IMAGE=runner-session:b bash scripts/build-images.sh`.
// --gap: the pause after each call (20 ms by default; 0: back to back).
import { parseArgs } from 'node:util';
import { ControllerProcess } from '../helpers/controller-process.js';
import { AgentApi, benchClient, execOk, type AgentCalls } from './agent-api.js';
import { interleave, summarize } from './stats.js';

const { values: args } = parseArgs({
  options: { 'image-a': { type: 'string' }, 'image-b': { type: 'string' }, rounds: { type: 'string' }, gap: { type: 'string' } },
});
if (!args['image-b']) throw new Error('usage: npx tsx test/bench/image-ab.ts --image-b TAG [--image-a TAG] [--rounds N] [--gap MS]');
const images = { A: args['image-a'] ?? 'runner-session:latest', B: args['image-b'] };
const rounds = Number(args.rounds ?? 250);
const gapMs = Number(args.gap ?? 20);
const SESSION = 'ab';

/** A controller of its own for `image`, under names no other run uses, removed with everything it made by destroy(). */
function controllerFor(side: 'A' | 'B', image: string): ControllerProcess {
  const name = `rtimgab-${process.pid}-${side.toLowerCase()}`;
  return new ControllerProcess({
    env: {
      RUNNER_API_TOKEN: `${name}-token-0123456789abcdef`,
      RUNNER_INSTANCE: name,
      SESSION_NETWORK: name,
      SESSION_NAME_PREFIX: `${name}-`,
      SOCKETS_DIR: `/tmp/${name}`,
      SESSION_IMAGE: image,
      SESSION_DISK_LIMIT: '0',
      LOG_LEVEL: 'warn',
    },
    logFile: `/tmp/${name}.log`,
  });
}

const controllers = { A: controllerFor('A', images.A), B: controllerFor('B', images.B) };
const pools: { close: () => Promise<void> }[] = [];
try {
  const calls: Record<string, () => Promise<unknown>> = {};
  for (const side of ['A', 'B'] as const) {
    const controller = controllers[side];
    await controller.start();
    await controller.createSession(SESSION);
    const direct = AgentApi.direct(`${controller.socketsDir}/${SESSION}/agent/agent.sock`, await controller.agentToken(SESSION));
    const client = benchClient(controller.url, controller.token);
    pools.push(client);
    const exec = (api: AgentCalls) => () => execOk(api, ['true']);
    calls[`${side} direct`] = exec(direct);
    calls[`${side} via controller`] = exec(client.runner.session(SESSION));
  }
  process.stdout.write(`A ${images.A}, B ${images.B}; ${rounds} rounds, ${gapMs} ms after each call\n`);
  const timings = await interleave(calls, { warmup: 30, rounds, maxMs: 900_000, settleMs: gapMs });
  for (const [name, ms] of Object.entries(timings)) {
    const { p50, p99 } = summarize(ms);
    process.stdout.write(`exec \`true\` ${name}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (n=${ms.length})\n`);
  }
} finally {
  for (const pool of pools) await pool.close();
  for (const controller of Object.values(controllers)) await controller.destroy().catch((error: unknown) => console.error(error));
}
