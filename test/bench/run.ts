import { spawn } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import pLimit from 'p-limit';
import { execOk } from './agent-api.js';
import { BenchEnv, dockerCli } from './bench-env.js';
import { BenchContext, type BenchSession } from './context.js';
import { measureColdCreate } from './figures/cold-create.js';
import { measureExec } from './figures/exec.js';
import { measureFileListing } from './figures/file-listing.js';
import { measureFileTransfer } from './figures/file-transfer.js';
import { measureFleet } from './figures/fleet.js';
import { measureImageBuild } from './figures/image-build.js';
import { measureStartCost } from './figures/start-cost.js';
import { measureTerminalEcho } from './figures/terminal-echo.js';
import { measureUsageCost } from './figures/usage-cost.js';
import { measureWarmCreate } from './figures/warm-create.js';
import { runClassroom } from './classroom/classroom.js';
import { runDensity } from './density/density.js';
import { FULL, QUICK } from './profile.js';
import type { ModeResult } from './mode.js';
import { missingRow, renderTable, writeLatestPage, writeReport, type BenchReport, type Row, type Unit } from './report.js';

const WARMUP_MAX_MS = 90_000;
// The usage figure waits out the cache once per round: 1 s instead of the default 5 keeps it short.
const MAIN_CONTROLLER_ENV = { USAGE_TTL_SECONDS: '1' };
const DENSITY_DEFAULT = 200;
const REPO = resolve(new URL('../..', import.meta.url).pathname);
const LATEST_PAGE = resolve(REPO, 'docs/benchmarks-latest.md');
const USAGE = `usage: npm run bench [-- --quick] [-- --cpu-prof] [-- --out FILE] [-- --only TEXT]
  a full run (no --quick, no --only) also writes its table to docs/benchmarks-latest.md
  --quick     fewer iterations and ${QUICK.sessions} sessions instead of ${FULL.sessions}: a smoke test of a couple of minutes
  --cpu-prof  the controller writes V8 CPU profiles to test/bench/results/profiles/ (read them with
              npx tsx test/bench/cpu-profile.ts FILE, or in Chrome DevTools)
  --out FILE  where the JSON goes (default test/bench/results/latest.json, quick.json with --quick)
  --only TEXT only the figures whose name contains TEXT (comma-separated: any of them), e.g. --only "write + read,listing"
  --density [N] instead of the figures: N idle sessions (default ${DENSITY_DEFAULT}), each with a /watch stream open; their
              memory, idle CPU, the controller's RSS, create time as the count grows, exec p50/p99 across them
              (JSON: test/bench/results/density.json)
  --classroom instead of the figures: 30 concurrent cold creates (every setting default), then 30
              concurrent creates from a full WARM_POOL_SIZE=30 pool (JSON: test/bench/results/classroom.json)`;

interface Args {
  /** The arguments as given, for the command line the docs page names. */
  argv: string[];
  quick: boolean;
  cpuProf: boolean;
  out: string;
  /** Lower-case parts of figure names to run; all figures when absent. */
  only?: string[];
  /** `--density N`: the density run with N sessions instead of the figures. */
  density?: number;
  /** `--classroom`: the classroom run instead of the figures. */
  classroom: boolean;
}

function parseArgs(all: string[]): Args {
  const { argv, density } = takeDensity(all);
  const classroom = argv.includes('--classroom');
  if (classroom && (density !== undefined || argv.includes('--quick') || argv.includes('--only'))) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const flags = new Set(['--quick', '--cpu-prof', '--classroom']);
  const outAt = argv.indexOf('--out');
  const onlyAt = argv.indexOf('--only');
  const isValue = (i: number) => (outAt !== -1 && i === outAt + 1) || (onlyAt !== -1 && i === onlyAt + 1);
  const unknown = argv.filter((a, i) => !flags.has(a) && a !== '--out' && a !== '--only' && !isValue(i));
  if (unknown.length > 0 || (outAt !== -1 && !argv[outAt + 1]) || (onlyAt !== -1 && !argv[onlyAt + 1])) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const quick = argv.includes('--quick');
  const out = argv[outAt + 1]!;
  const only = onlyAt === -1 ? undefined : argv[onlyAt + 1]!.toLowerCase().split(',');
  const mode = density !== undefined ? 'density' : classroom ? 'classroom' : quick ? 'quick' : 'latest';
  const defaultOut = `test/bench/results/${mode}.json`;
  return { argv: all, quick, cpuProf: argv.includes('--cpu-prof'), out: resolve(REPO, outAt === -1 ? defaultOut : out), only, density, classroom };
}

/** `--density` with its optional count, taken out of the arguments; exits with the usage on a bad count. */
function takeDensity(argv: string[]): { argv: string[]; density?: number } {
  const at = argv.indexOf('--density');
  if (at === -1) return { argv };
  const next = argv[at + 1];
  const hasCount = next !== undefined && /^\d+$/.test(next);
  const density = hasCount ? Number(next) : DENSITY_DEFAULT;
  if (density < 1 || argv.includes('--quick') || argv.includes('--only')) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  return { argv: argv.filter((_, i) => i !== at && !(hasCount && i === at + 1)), density };
}

const began = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
}

/** Runs a build script with its output on our stderr (stdout is the table's). */
function runScript(command: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`${command} ${args.join(' ')} exited ${code}`))));
  });
}

async function environment(): Promise<Record<string, unknown>> {
  const quiet = (p: Promise<string>) => p.then((s) => s.trim(), () => 'unknown');
  const git = (args: string[]) =>
    new Promise<string>((done) => {
      const child = spawn('git', args, { cwd: REPO });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.once('exit', () => done(out.trim()));
      child.once('error', () => done('unknown'));
    });
  return {
    node: process.version,
    cpus: cpus().length,
    memory_mib: Math.round(totalmem() / 1024 ** 2),
    loadavg_at_start: loadavg(),
    docker_server: await quiet(dockerCli(['version', '--format', '{{.Server.Version}}'])),
    session_image: await quiet(dockerCli(['image', 'inspect', '--format', '{{.Id}}', 'runner-session:latest'])),
    git_commit: await git(['rev-parse', '--short', 'HEAD']),
    git_dirty: (await git(['status', '--porcelain', '--', 'controller', 'agent', 'shared'])) !== '',
    controller: 'node --initial-old-space-size=96 --import tsx controller/main.ts (as scripts/start.sh runs it), a child process on a loopback port',
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const prepare = () => runScript('bash', ['scripts/build-images.sh']);
  const target = args.density;
  if (target !== undefined) return runMode(args, `density ${target}`, () => runDensity({ target, log, prepare }));
  if (args.classroom) return runMode(args, 'classroom', () => runClassroom({ log, prepare }));
  const profile = args.quick ? QUICK : FULL;
  const startedAt = new Date();
  const env = await BenchEnv.create(args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${resolve(REPO, 'test/bench/results/profiles')}`] : []);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    stopping = true;
    log(`${signal}: removing everything this run made`);
    void env.cleanup().finally(() => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, onSignal);

  const rows: Row[] = [];
  const errors: string[] = [];
  // The session every per-session figure uses is made and warmed up whatever --only picks.
  const wanted = (name: string) =>
    !args.only || name === 'main session' || name === 'warm-up' || args.only.some((part) => name.toLowerCase().includes(part));
  let ctx: BenchContext | undefined;
  let info: Record<string, unknown> = {};
  // A figure that fails becomes an ERROR row; the others are still measured.
  const figure = async (name: string, unit: Unit, measure: () => Promise<Row[]>): Promise<void> => {
    if (stopping || !wanted(name)) return;
    log(name);
    try {
      rows.push(...(await measure()));
    } catch (error) {
      // Interrupted: the cleanup pulled the sessions away; that is no finding.
      if (stopping) return;
      const message = (error as Error).message.split('\n')[0]!.slice(0, 120);
      errors.push(`${name}: ${(error as Error).stack ?? message}`);
      rows.push(missingRow(name, unit, `error: ${message}`));
      log(`${name} failed: ${message}`);
    }
  };

  try {
    log(`profile ${profile.name}; removing leftovers of killed runs`);
    await env.sweepLeftovers();
    log('building images (scripts/build-images.sh; skips what is up to date)');
    await runScript('bash', ['scripts/build-images.sh']);
    info = await environment();
    const controller = await env.startController(MAIN_CONTROLLER_ENV);
    ctx = new BenchContext(profile, env, controller.url, log);
    const c = ctx;

    let coldP50: number | null = null;
    await figure('session create, cold', 'ms', async () => {
      const cold = await measureColdCreate(c);
      coldP50 = cold.coldP50;
      return cold.rows;
    });
    await figure('CPU time one session start costs', 'ms', () => measureStartCost(c));

    // After the cold creates (warmed up, no sessions left), so start-up garbage does not count.
    const rssAtStart = await controller.rssBytes();
    let main: BenchSession | undefined;
    await figure('main session', 'ms', async () => {
      main = await c.openSession('main');
      return [];
    });
    if (main) {
      const s = main;
      await figure('warm-up', 'ms', async () => {
        await warmUp(c, s);
        return [];
      });
      await figure('exec `true`', 'ms', () => measureExec(c, s));
      await figure('proxy overhead, file listing', 'ms', () => measureFileListing(c, s));
      await figure('terminal keystroke echo', 'ms', () => measureTerminalEcho(c, s));
      await figure('1 MiB write + read', 'MiB/s', () => measureFileTransfer(c, s, 1, profile.smallFileRounds));
      await figure('50 MiB write + read', 'MiB/s', () => measureFileTransfer(c, s, 50, profile.largeFileRounds));
      await figure('small image build', 'ms', () => measureImageBuild(c, s));
      await figure(`${profile.sessions} sessions: memory and exec load`, 'MiB', async () => (await measureFleet(c, s, rssAtStart)).rows);
      await figure('GET /sessions: usage expired against cached', 'ms', () => measureUsageCost(c));
    }
    log('removing the sessions');
    await deleteAllSessions(c);
    await figure('session create from the warm pool', 'ms', () => measureWarmCreate(c, coldP50));
  } catch (error) {
    errors.push((error as Error).stack ?? String(error));
    log(`run aborted: ${(error as Error).message}`);
  } finally {
    await ctx?.close().catch(() => {});
    // The controller's own log (warnings and errors) outlives the run, for whoever reads a MISS or an ERROR.
    await mkdir(dirname(args.out), { recursive: true });
    await copyFile(env.controllerLog, resolve(dirname(args.out), 'controller.log')).catch(() => {});
    log('cleaning up containers, volumes, network and folders');
    await env.cleanup().catch((error: unknown) => errors.push(`cleanup: ${String(error)}`));
  }

  const table = renderTable(rows);
  // Other work on the machine moves every figure: the 1-minute load average says how much there was.
  const loadAtStart = (info.loadavg_at_start as number[] | undefined)?.[0]?.toFixed(1) ?? '?';
  const header = `runner bench (${profile.name}), ${startedAt.toISOString()}, ${info.cpus ?? '?'} CPUs, load average ${loadAtStart} at start, ${loadavg()[0]!.toFixed(1)} at end`;
  process.stdout.write(`\n${header}\n\n${table}\n`);
  if (errors.length > 0) process.stdout.write(`\nerrors:\n${errors.map((e) => `  ${e.split('\n')[0]}`).join('\n')}\n`);
  const report: BenchReport = {
    profile: profile.name,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    environment: { ...info, loadavg_at_end: loadavg() },
    rows,
    samples: ctx?.samples ?? {},
    extras: ctx?.extras ?? {},
    errors,
  };
  await writeReport(args.out, report);
  process.stdout.write(`\nJSON: ${args.out}\n`);
  // Only a run of every figure at full size stands for the runner in the docs.
  if (!args.quick && !args.only && !stopping) {
    await writeLatestPage(LATEST_PAGE, report, ['npm run bench', ...(args.argv.length ? ['--', ...args.argv] : [])].join(' '));
    process.stdout.write(`docs: ${LATEST_PAGE}\n`);
  }
  return errors.length > 0 ? 1 : 0;
}

/** A run of its own instead of the figures (density, classroom): its table on stdout, its JSON beside the others. */
async function runMode(args: Args, name: string, run: () => Promise<ModeResult>): Promise<number> {
  const startedAt = new Date();
  const info = await environment();
  const result = await run();
  const header = `runner bench (${name}), ${startedAt.toISOString()}, ${info.cpus} CPUs, ${info.memory_mib} MiB, load average ${(info.loadavg_at_start as number[])[0]!.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end`;
  process.stdout.write(`\n${header}\n\n${renderTable(result.rows)}\n`);
  if (result.errors.length > 0) process.stdout.write(`\nerrors:\n${result.errors.map((e) => `  ${e.split('\n')[0]}`).join('\n')}\n`);
  const report: BenchReport = {
    profile: name,
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    environment: { ...info, loadavg_at_end: loadavg() },
    rows: result.rows,
    samples: {},
    extras: result.extras,
    errors: result.errors,
  };
  await writeReport(args.out, report);
  process.stdout.write(`\nJSON: ${args.out}\n`);
  return result.errors.length > 0 ? 1 : 0;
}

/** Every kind of request, through the controller and direct, untimed: the JIT of both servers gets to work first. */
async function warmUp(ctx: BenchContext, session: BenchSession): Promise<void> {
  const small = Buffer.alloc(64 * 1024, 1);
  for (const api of [session.viaController, session.direct]) await api.mkdir('/workspace/bench-warmup');
  const deadline = performance.now() + WARMUP_MAX_MS;
  for (let i = 0; i < ctx.profile.warmupRounds && performance.now() < deadline; i++) {
    for (const api of [session.viaController, session.direct]) {
      await execOk(api, ['true']);
      await api.listFiles('/workspace');
      await api.writeFile('/workspace/bench-warmup/small.bin', small);
      await api.readBytes('/workspace/bench-warmup/small.bin');
    }
  }
}

async function deleteAllSessions(ctx: BenchContext): Promise<void> {
  const sessions = await ctx.runner.listSessions();
  const limit = pLimit(4);
  await Promise.all(sessions.map((s) => limit(() => ctx.runner.deleteSession(s.session_id))));
}

process.exitCode = await main();
