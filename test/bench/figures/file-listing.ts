import type { AgentCalls } from '../agent-api.js';
import { BytePipe } from '../byte-pipe.js';
import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave } from '../stats.js';

const FOLDER = '/workspace/bench-list';
const FILES = 30;
const WARMUP = 50;

/**
 * `GET /files?path=…` of a folder of 30 files, through the controller, direct, and through a bare byte pipe in front
 * of the agent (what one more process on the way costs at the least): the proxy's own cost.
 */
export async function measureFileListing(ctx: BenchContext, session: BenchSession): Promise<Row[]> {
  await session.direct.mkdir(FOLDER);
  for (let i = 0; i < FILES; i++) await session.direct.writeFile(`${FOLDER}/file-${i}.txt`, `file ${i}\n`);
  const list = async (api: AgentCalls) => {
    const listing = await api.listFiles(FOLDER);
    if (listing.entries.length !== FILES) throw new Error(`listing has ${listing.entries.length} entries, expected ${FILES}`);
  };
  const pipe = new BytePipe(session.agentSocket, session.token);
  try {
    const piped = await pipe.api;
    const timings = await interleave(
      { controller: () => list(session.viaController), direct: () => list(session.direct), pipe: () => list(piped) },
      { warmup: WARMUP, rounds: ctx.profile.listingRounds, maxMs: 90_000 },
    );
    const cpuMs = await ctx.controllerCpuPerCall(() => list(session.viaController), Math.min(ctx.profile.listingRounds, 500));
    const s = ctx.record('file_listing', timings);
    const figure = 'proxy overhead, file listing (30 entries)';
    return [
      compareRow(`${figure}, p50`, 'ms', s.controller.p50, 'direct to agent socket', s.direct.p50, {
        by: 'delta',
        target: { text: '≤ +0.7 ms over direct', check: (v, b) => v - b <= 0.7 },
        note: `n=${s.controller.n} each, interleaved; controller CPU ${cpuMs.toFixed(2)} ms per request; a bare byte pipe adds ${(s.pipe.p50 - s.direct.p50).toFixed(2)} ms`,
      }),
      compareRow(`${figure}, p50`, 'ms', s.controller.p50, 'a bare byte pipe to the agent', s.pipe.p50, { by: 'delta' }),
      compareRow(`${figure}, p99`, 'ms', s.controller.p99, 'direct to agent socket', s.direct.p99, { by: 'delta' }),
    ];
  } finally {
    await pipe.close();
  }
}
