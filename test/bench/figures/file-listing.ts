import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave } from '../stats.js';

const FOLDER = '/workspace/bench-list';
const FILES = 30;
const WARMUP = 50;

/** `GET /files?path=…` of a folder of 30 files, through the controller and direct: the proxy's own cost. */
export async function measureFileListing(ctx: BenchContext, session: BenchSession): Promise<Row[]> {
  await session.direct.mkdir(FOLDER);
  for (let i = 0; i < FILES; i++) await session.direct.writeFile(`${FOLDER}/file-${i}.txt`, `file ${i}\n`);
  const list = async (api: BenchSession['direct']) => {
    const listing = await api.list(FOLDER);
    if (listing.entries.length !== FILES) throw new Error(`listing has ${listing.entries.length} entries, expected ${FILES}`);
  };
  const timings = await interleave(
    { controller: () => list(session.viaController), direct: () => list(session.direct) },
    { warmup: WARMUP, rounds: ctx.profile.listingRounds, maxMs: 60_000 },
  );
  const cpuMs = await ctx.controllerCpuPerCall(() => list(session.viaController), Math.min(ctx.profile.listingRounds, 500));
  const s = ctx.record('file_listing', timings);
  return [
    compareRow('proxy overhead, file listing (30 entries), p50', 'ms', s.controller.p50, 'direct to agent socket', s.direct.p50, {
      by: 'delta',
      target: { text: '≤ +1 ms over direct', check: (v, b) => v - b <= 1 },
      note: `n=${s.controller.n} each, interleaved; controller CPU ${cpuMs.toFixed(2)} ms per request`,
    }),
    compareRow('proxy overhead, file listing (30 entries), p99', 'ms', s.controller.p99, 'direct to agent socket', s.direct.p99, { by: 'delta' }),
  ];
}
