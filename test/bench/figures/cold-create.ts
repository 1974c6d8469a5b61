import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findRemappedRoot, handOverAgentDir } from '../../../controller/runtime/userns.js';
import { probeAgentHealth } from '../../../controller/sessions/agent-probe.js';
import { SESSION_PATHS } from '../../../core/session-layout.js';
import { BENCH_LABEL, dockerCli } from '../bench-env.js';
import type { BenchContext } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave } from '../stats.js';

// The baseline asks this often whether the inner daemon answers: finer than any poll in the controller.
const BASELINE_POLL_MS = 20;
const READY_TIMEOUT_MS = 120_000;
const SECCOMP_PROFILE = new URL('../../../image/seccomp.json', import.meta.url).pathname;

/**
 * `POST /sessions` → 201 (agent healthy, inner daemon ready) against `docker run -d` of the same image with the
 * same flags and limits, polled until its agent reports the inner daemon ready. Deletions are not timed.
 */
export async function measureColdCreate(ctx: BenchContext): Promise<{ rows: Row[]; coldP50: number }> {
  const { env, runner } = ctx;
  const config = env.controllerConfig();
  // On a remapped engine the session's root must own the agent's folder, as the controller arranges for its own.
  const remappedRoot = findRemappedRoot(await env.docker.info());
  let n = 0;
  const made: Array<() => Promise<void>> = [];

  const viaController = async () => {
    const id = `cold-${(n += 1)}`;
    made.push(async () => {
      await runner.deleteSession(id);
    });
    await runner.createSession({ session_id: id });
  };

  const dockerRun = async () => {
    const name = `${env.namePrefix}base-${(n += 1)}`;
    const dir = join(env.tmpDir, name);
    made.push(async () => {
      await dockerCli(['rm', '-f', '-v', name]).catch(() => '');
      await dockerCli(['volume', 'rm', '-f', `${name}-workspace`, `${name}-docker`]).catch(() => '');
      await rm(dir, { recursive: true, force: true });
    });
    const token = randomBytes(32).toString('hex');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'token'), token, { mode: 0o600 });
    if (remappedRoot) await handOverAgentDir(dir, remappedRoot);
    // controller/runtime/session-security.ts on the CLI, as image/run-session.sh spells it, with the controller's limits.
    await dockerCli([
      'run', '-d', '--name', name, '--label', `${BENCH_LABEL}=${env.instance}`, '--network', env.network,
      '--cap-add', 'SYS_ADMIN', '--security-opt', `seccomp=${SECCOMP_PROFILE}`, '--security-opt', 'systempaths=unconfined',
      '--device', '/dev/net/tun', '--memory', `${config.memoryBytes}b`, '--memory-swap', `${config.memoryBytes}b`,
      '--cpus', String(config.cpus), '--pids-limit', String(config.pidsLimit),
      '--log-opt', 'max-size=10m', '--log-opt', 'max-file=3',
      '-v', `${name}-workspace:${SESSION_PATHS.workspace}`, '-v', `${name}-docker:${SESSION_PATHS.dockerData}`,
      '-v', `${dir}:${SESSION_PATHS.agentDir}`, config.sessionImage,
    ]);
    const socket = join(dir, 'agent.sock');
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      const health = await probeAgentHealth({ kind: 'unix', socketPath: socket }, token);
      if (health?.status === 'healthy' && health.daemon.ready) return;
      if (performance.now() > deadline) throw new Error(`baseline session ${name} not ready in ${READY_TIMEOUT_MS} ms`);
      await sleep(BASELINE_POLL_MS);
    }
  };

  const removeMade = async () => {
    for (const remove of made.splice(0)) await remove();
  };
  // The controller first: its first create makes the network the baseline joins.
  const timings = await interleave(
    { controller: viaController, dockerRun },
    { warmup: 1, rounds: ctx.profile.createRounds, maxMs: 240_000, between: removeMade },
  ).finally(removeMade);
  const s = ctx.record('cold_create', timings);
  const row = compareRow(
    'session create, cold (POST /sessions → ready), p50',
    'ms',
    s.controller.p50,
    '`docker run` → inner daemon ready',
    s.dockerRun.p50,
    {
      target: { text: '≤ 1.2× baseline', check: (v, b) => v <= 1.2 * b },
      note: `n=${s.controller.n} each; max ${s.controller.max.toFixed(0)} ms vs ${s.dockerRun.max.toFixed(0)} ms`,
    },
  );
  return { rows: [row], coldP50: s.controller.p50 };
}
