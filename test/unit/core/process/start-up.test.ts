import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/close-on-signal.ts');

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(script: string, env: Record<string, string> = {}): Run {
  const child = spawn(join(ROOT, 'node_modules/.bin/tsx'), [script], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

// Each case starts a process under tsx, which takes seconds on a busy machine.
describe('process start-up', { timeout: 60_000 }, () => {
  let run: Run | undefined;
  afterEach(() => {
    if (run?.child.exitCode === null) run.child.kill('SIGKILL');
    run = undefined;
  });

  it('ends a bad configuration with one line naming the process, and exit code 2', async () => {
    run = start(FIXTURE, { FAIL_CONFIG: '1' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toBe('demo: invalid configuration: PORT: expected a number\n');
  });

  it.each([
    ['agent', 'agent/main.ts', { AGENT_LISTEN: 'not-an-address' }, 'agent: invalid configuration: AGENT_LISTEN: '],
    ['controller', 'controller/main.ts', { PORT: 'eighty' }, 'controller: invalid configuration: PORT: '],
  ])('the %s does the same', async (_name, script, env, line) => {
    run = start(join(ROOT, script), env);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^\\n]+\\n$`));
  });

  it('closes gracefully on SIGTERM, saying why, and exits 0', async () => {
    run = start(FIXTURE);
    await vi.waitFor(() => expect(run!.stdout()).toContain('"msg":"ready"'), { timeout: 45_000 });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const messages = run.stdout().trim().split('\n').map((line) => JSON.parse(line).msg);
    expect(messages).toEqual(['ready', 'demo shutting down', 'closed']);
  });
});
