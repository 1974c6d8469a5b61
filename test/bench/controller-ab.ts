// Two controllers on one session, each request kind interleaved round by round between them: this checkout's (A)
// and another checkout's or the same with other node options (B). What `npm run bench` cannot do: compare code or
// flags in the same run, on the same machine load. Prints p50s, the controllers' CPU per request and their RSS.
//   npx tsx test/bench/controller-ab.ts [--base DIR] [--node-args-b="--flag …"] [--rounds N] [--mib N]
// --base: the other checkout (its node_modules present), e.g. `git worktree add /tmp/base main`; this one by default.
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ControllerProcess } from '../helpers/controller-process.js';
import { benchClient, execOk, type AgentCalls } from './agent-api.js';
import { BenchEnv } from './bench-env.js';
import { BytePipe } from './byte-pipe.js';
import { BenchContext } from './context.js';
import { QUICK } from './profile.js';
import { interleave, summarize } from './stats.js';

const CPU_BLOCKS = 3;
const IDLE_MS = 30_000;
const { values: args } = parseArgs({
  options: { base: { type: 'string' }, 'node-args-b': { type: 'string' }, rounds: { type: 'string' }, mib: { type: 'string' } },
});
const rounds = Number(args.rounds ?? 300);
const mib = Number(args.mib ?? 50);
const say = (line: string) => process.stdout.write(`${line}\n`);

const rssMib = async (controller: ControllerProcess) => ((await controller.rssBytes()) / 1024 ** 2).toFixed(1);

/** Each side's CPU per call over `count` calls, in blocks taken in turn, so that both see the same load. */
async function cpuPerCall(sides: Record<'A' | 'B', { controller: ControllerProcess; call: () => Promise<unknown> }>, count: number): Promise<string> {
  const per: Record<'A' | 'B', string[]> = { A: [], B: [] };
  for (let block = 0; block < CPU_BLOCKS; block++) {
    for (const name of ['A', 'B'] as const) {
      const before = await sides[name].controller.cpuMs();
      for (let i = 0; i < count; i++) await sides[name].call();
      per[name].push((((await sides[name].controller.cpuMs()) - before) / count).toFixed(2));
    }
  }
  return `A ${per.A.join(', ')}; B ${per.B.join(', ')}`;
}

function p50s(timings: Record<string, number[]>): string {
  return Object.entries(timings)
    .map(([name, ms]) => `${name} ${summarize(ms).p50.toFixed(2)}`)
    .join(', ');
}

const env = await BenchEnv.create();
let other: ControllerProcess | undefined;
try {
  await env.sweepLeftovers();
  const a = await env.startController();
  const ctx = new BenchContext(QUICK, env, a.url, () => {});
  const session = await ctx.openSession('ab');
  // B adopts the running session as a restarted controller would: same instance, sockets folder and network.
  other = new ControllerProcess({
    env: env.controllerEnv(),
    logFile: join(env.tmpDir, 'controller-b.log'),
    nodeArgs: args['node-args-b']?.split(' ').filter(Boolean) ?? [],
    docker: env.docker,
    checkout: args.base === undefined ? undefined : resolve(args.base),
  });
  await other.start();
  const b = benchClient(other.url);
  const viaB = b.runner.session('ab');
  say(`A ${process.cwd()}; B ${args.base ?? 'the same checkout'} ${args['node-args-b'] ?? ''}; ${rounds} rounds, ${mib} MiB`);

  const exec = (api: AgentCalls) => () => execOk(api, ['true']);
  const list = (api: AgentCalls) => () => api.listFiles('/workspace');
  for (const [kind, of] of [['exec `true`', exec], ['file listing', list]] as const) {
    const calls = { A: of(session.viaController), B: of(viaB), direct: of(session.direct) };
    const timings = await interleave(calls, { warmup: 100, rounds, maxMs: 300_000 });
    say(`${kind}, p50 ms: ${p50s(timings)}`);
    say(`${kind}, controller CPU ms per request: ${await cpuPerCall({ A: { controller: a, call: calls.A }, B: { controller: other, call: calls.B } }, 300)}`);
  }

  const data = randomBytes(mib * 1024 * 1024);
  const transfer = (api: AgentCalls, path: string) => async () => {
    await api.writeFile(path, data);
    if (Buffer.compare(await api.readBytes(path), data) !== 0) throw new Error(`${path}: read back other bytes`);
  };
  const pipe = new BytePipe(session.agentSocket, session.token);
  try {
    const calls = {
      A: transfer(session.viaController, '/workspace/ab-a.bin'),
      B: transfer(viaB, '/workspace/ab-b.bin'),
      direct: transfer(session.direct, '/workspace/ab-direct.bin'),
      pipe: transfer(await pipe.api, '/workspace/ab-pipe.bin'),
    };
    const timings = await interleave(calls, { warmup: 2, rounds: Math.max(3, Math.round(rounds / 30)), maxMs: 600_000 });
    const against = (side: 'A' | 'B') => summarize(timings[side].map((ms, i) => timings.pipe[i]! / ms));
    say(`${mib} MiB write + read, p50 ms: ${p50s(timings)}`);
    for (const side of ['A', 'B'] as const) {
      const r = against(side);
      say(`${mib} MiB write + read, ${side} against the pipe round by round: ${r.p50.toFixed(2)}× median (${r.min.toFixed(2)}–${r.max.toFixed(2)})`);
    }
    say(`${mib} MiB write + read, controller CPU ms per round: ${await cpuPerCall({ A: { controller: a, call: calls.A }, B: { controller: other, call: calls.B } }, 2)}`);
  } finally {
    await pipe.close();
  }
  say(`RSS MiB: A ${await rssMib(a)}, B ${await rssMib(other)}`);
  // What an idle controller gives back (V8's memory reducer works once allocation has been quiet for a while).
  await sleep(IDLE_MS);
  say(`RSS MiB ${IDLE_MS / 1000} s later, idle: A ${await rssMib(a)}, B ${await rssMib(other)}`);
  await b.close();
  await ctx.close();
} finally {
  await other?.stop();
  await env.cleanup();
}
