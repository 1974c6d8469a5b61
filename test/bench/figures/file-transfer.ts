import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentCalls } from '../agent-api.js';
import { dockerCli } from '../bench-env.js';
import { BytePipe } from '../byte-pipe.js';
import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave, summarize } from '../stats.js';

const MIB = 1024 * 1024;

/**
 * Writes a file of random bytes into the workspace and reads it back, checking every byte: through the controller
 * (raw `application/octet-stream` both ways), direct to the agent, through a bare byte pipe in front of the agent
 * (what one more hop costs at the least), and by `docker cp` in and out.
 */
export async function measureFileTransfer(ctx: BenchContext, session: BenchSession, mib: number, rounds: number): Promise<Row[]> {
  const data = randomBytes(mib * MIB);
  const hostIn = join(ctx.env.tmpDir, `transfer-${mib}.in`);
  const hostOut = join(ctx.env.tmpDir, `transfer-${mib}.out`);
  await writeFile(hostIn, data);
  const check = (back: Uint8Array, how: string) => {
    if (Buffer.compare(back, data) !== 0) throw new Error(`${how}: read back ${back.length} bytes that differ from the ${data.length} written`);
  };
  const viaApi = async (api: AgentCalls, path: string) => {
    await api.writeFile(path, data);
    check(await api.readBytes(path), path);
  };
  const dockerCp = async () => {
    const path = `/workspace/bench-${mib}-cp.bin`;
    await dockerCli(['cp', hostIn, `${session.containerName}:${path}`]);
    await dockerCli(['cp', `${session.containerName}:${path}`, hostOut]);
    check(await readFile(hostOut), 'docker cp');
    await rm(hostOut, { force: true });
  };
  const pipe = new BytePipe(session.agentSocket, session.token);
  try {
    const piped = await pipe.api;
    // Controller, direct and pipe side by side; `docker cp` apart, since the engine stays busy for a moment after it.
    const timings = await interleave(
      {
        controller: () => viaApi(session.viaController, `/workspace/bench-${mib}-controller.bin`),
        direct: () => viaApi(session.direct, `/workspace/bench-${mib}-direct.bin`),
        pipe: () => viaApi(piped, `/workspace/bench-${mib}-pipe.bin`),
      },
      { warmup: 1, rounds, maxMs: 120_000 },
    );
    const copies = await interleave({ dockerCp }, { warmup: 1, rounds, maxMs: 60_000 });
    const cpuMs = await ctx.controllerCpuPerCall(() => viaApi(session.viaController, `/workspace/bench-${mib}-controller.bin`), rounds);
    const s = ctx.record(`file_transfer_${mib}mib`, { ...timings, ...copies });
    // Both directions move the file once: throughput is 2 × size over the round trip.
    const rate = (ms: number) => (2 * mib) / (ms / 1000);
    const figure = `${mib} MiB write + read via controller, p50 throughput`;
    // Each round ran every method back to back: its own ratio says how much the figure moves with the machine's load.
    const perRound = summarize(timings.controller.map((ms, i) => timings.pipe[i]! / ms));
    const note = `n=${s.controller.n} each; p50 round trip ${s.controller.p50.toFixed(0)} ms via controller, ${s.direct.p50.toFixed(0)} ms direct, ${s.pipe.p50.toFixed(0)} ms through a byte pipe, ${s.dockerCp.p50.toFixed(0)} ms docker cp; against the pipe round by round ${perRound.p50.toFixed(2)}× median (${perRound.min.toFixed(2)}–${perRound.max.toFixed(2)}); controller CPU ${cpuMs.toFixed(0)} ms per write+read`;
    return [
      compareRow(figure, 'MiB/s', rate(s.controller.p50), 'direct to agent socket', rate(s.direct.p50), {
        target: { text: '≥ 0.8× direct', check: (v, b) => v >= 0.8 * b },
        note,
      }),
      compareRow(figure, 'MiB/s', rate(s.controller.p50), 'a bare byte pipe to the agent', rate(s.pipe.p50), {
        // Large transfers are where the proxy's own cost per byte shows: they must come close to one more bare hop.
        target: mib >= 50 ? { text: '≥ 0.9× byte pipe', check: (v, b) => v >= 0.9 * b } : undefined,
      }),
      compareRow(figure, 'MiB/s', rate(s.controller.p50), '`docker cp` in and out', rate(s.dockerCp.p50)),
    ];
  } finally {
    await pipe.close();
    await rm(hostIn, { force: true });
    await rm(hostOut, { force: true });
  }
}
