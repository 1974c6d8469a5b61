// Summarizes a V8 CPU profile (`npm run bench -- --cpu-prof` writes the controller's): where its time went, by
// area (our code, each package, Node internals, GC) and by function.
//   npx tsx test/bench/cpu-profile.ts test/bench/results/profiles/CPU.*.cpuprofile [--top 30] [--callers NAME]
// --callers NAME: for the functions named NAME, their self time by call stack (who makes them run).
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** `undici`, `fastify`, `controller/proxy`, `node:internal/…` or a V8 pseudo-frame such as `(garbage collector)`. */
function areaOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const own = /\/(controller|agent|shared)\/(?:([^/]+)\/)?/.exec(url);
  if (own) return own[2] && !own[2].endsWith('.ts') ? `${own[1]}/${own[2]}` : own[1]!;
  return url;
}

function where(frame: ProfileNode['callFrame']): string {
  const file = frame.url.replace(/^file:\/\/.*?\/(node_modules\/|controller\/|agent\/|shared\/)/, '$1');
  return `${frame.functionName || '(anonymous)'} ${file}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
}

function table(title: string, totals: Map<string, number>, all: number, top: number): string {
  const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = rows.map(([name, us]) => `${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / all).toFixed(1).padStart(5)}%  ${name}`);
  return [`${title}:`, ...lines].join('\n');
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const top = Number(option(args, '--top') ?? 30);
  const callersOf = option(args, '--callers');
  const valued = new Set(['--top', '--callers']);
  const files = args.filter((a, i) => !valued.has(a) && !valued.has(args[i - 1] ?? ''));
  if (files.length === 0) {
    process.stderr.write('usage: npx tsx test/bench/cpu-profile.ts FILE.cpuprofile… [--top N]\n');
    process.exit(2);
  }
  for (const file of files) {
    const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const byArea = new Map<string, number>();
    const byStack = new Map<string, number>();
    const byFunction = new Map<string, number>();
    let busy = 0;
    for (const [id, us] of self) {
      const frame = byId.get(id)!.callFrame;
      if (frame.functionName === '(idle)') continue;
      busy += us;
      byArea.set(areaOf(frame), (byArea.get(areaOf(frame)) ?? 0) + us);
      byFunction.set(where(frame), (byFunction.get(where(frame)) ?? 0) + us);
      if (callersOf !== undefined && frame.functionName === callersOf) {
        const stack: string[] = [];
        for (let at = parent.get(id); at !== undefined && stack.length < 8; at = parent.get(at)) stack.push(where(byId.get(at)!.callFrame));
        const key = stack.join('\n      ← ');
        byStack.set(key, (byStack.get(key) ?? 0) + us);
      }
    }
    const wall = (profile.endTime - profile.startTime) / 1000;
    process.stdout.write(`${file}: ${(wall / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(0)} ms busy (self time)\n\n`);
    process.stdout.write(`${table('by area', byArea, busy, top)}\n\n${table('by function', byFunction, busy, top)}\n\n`);
    if (callersOf !== undefined) process.stdout.write(`${table(`${callersOf} by caller`, byStack, busy, 8)}\n\n`);
  }
}

await main();
