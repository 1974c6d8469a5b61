/*
 * What reporting usage costs: GET /sessions over N real sessions on two apps over the same sessions, one whose
 * runtime reads usage and one whose runtime does not (the Kubernetes case), interleaved; the first with every
 * cached figure expired (a cgroup read per session) and with the cache warm. Then a cold read of 200 sessions'
 * cgroups (each of the N read 200/N times, none cached), and one walk of a session's volumes.
 *
 *   RUNNER_TEST_NAME_PREFIX=rtusage- npx tsx scripts/usage-cost.ts [N=10] [rounds=30]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { buildApp } from '../controller/app.js';
import { DockerSessionRuntime } from '../controller/runtime/docker-session-runtime.js';
import type { SessionRuntime } from '../controller/runtime/session-runtime.js';
import { startE2EController } from '../test/helpers/controller-e2e.js';
import { testDocker } from '../test/helpers/test-engine.js';
import pino from 'pino';

const N = Number(process.argv[2] ?? 10);
const ROUNDS = Number(process.argv[3] ?? 30);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(2)} ms`;

const ctl = await startE2EController({ USAGE_TTL_SECONDS: '1', USAGE_DISK_WALK_SECONDS: '3600', SESSION_DISK_LIMIT: '0' });
try {
  for (let i = 0; i < N; i += 1) await ctl.client.createSession({ session_id: `cost-${i}` });
  const log = pino({ level: 'silent' });
  const docker = new DockerSessionRuntime(testDocker, ctl.config, log);
  // The same runtime without its usage methods: sessions report no usage.
  const blind = new Proxy(docker, {
    get: (target, key) => {
      if (key === 'readUsage' || key === 'walkDiskUsage') return undefined;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as SessionRuntime;
  const without = await buildApp({ config: ctl.config, runtime: blind });
  await without.ready();

  const time = async (app: typeof without): Promise<number> => {
    const started = performance.now();
    const res = await app.inject({ method: 'GET', url: '/sessions', headers: ctl.authHeaders() });
    const took = performance.now() - started;
    if (res.statusCode !== 200 || res.json().sessions.length !== N) throw new Error(`GET /sessions: ${res.statusCode} ${res.body.slice(0, 200)}`);
    return took;
  };
  await time(ctl.app);
  await time(without);
  const cold: number[] = [];
  const warm: number[] = [];
  const none: number[] = [];
  // The order turns every round (a cached request always follows an expired one): none goes first, in the middle, last.
  const orders = [['none', 'cold', 'warm'], ['cold', 'none', 'warm'], ['cold', 'warm', 'none']] as const;
  for (let round = 0; round < ROUNDS; round += 1) {
    await sleep(1_100); // past USAGE_TTL_SECONDS: every session's figures are read again
    for (const kind of orders[round % orders.length]!) {
      if (kind === 'none') none.push(await time(without));
      else (kind === 'cold' ? cold : warm).push(await time(ctl.app));
    }
  }
  console.info(`GET /sessions, ${N} sessions, median of ${ROUNDS} interleaved rounds:`);
  console.info(`  without usage ${ms(median(none))} | usage, cache expired ${ms(median(cold))} (${(median(cold) / median(none)).toFixed(2)}x) | usage, cached ${ms(median(warm))} (${(median(warm) / median(none)).toFixed(2)}x)`);

  const names = (await ctl.client.listSessions()).map((s) => s.container_name);
  await Promise.all(names.map((name) => docker.readUsage(name))); // learn each container's cgroup once
  const reads: number[] = [];
  for (let round = 0; round < 5; round += 1) {
    const started = performance.now();
    await Promise.all(Array.from({ length: 200 }, (_, i) => docker.readUsage(names[i % names.length]!)));
    reads.push(performance.now() - started);
  }
  console.info(`  200 cgroup reads (no cache), median of 5: ${ms(median(reads))}`);

  const walks: number[] = [];
  for (const name of names.slice(0, 5)) {
    const started = performance.now();
    await docker.walkDiskUsage(name);
    walks.push(performance.now() - started);
  }
  console.info(`  one walk (du) of a fresh session's two volumes, median of 5: ${ms(median(walks))}`);
  await without.close();
} finally {
  await ctl.destroy();
}
