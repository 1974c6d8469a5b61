import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { commandMessage, sendCommand, startLearnerExec } from '../../../../agent/exec/learner-exec.js';
import type { ExecResult } from '../../../../shared/schemas/exec.js';
import { createTestAgent, execOnAgent, hostLearnerExec, LEARNER_UID, type TestAgent } from '../../../helpers/test-agent.js';

const PATH = '/usr/local/bin:/usr/bin:/bin';

/** Runs learner-exec as the agent does (root, empty environment), writing `message` to its fd 3. */
function runDirectly(message: Buffer | string) {
  return collect(startLearnerExec(hostLearnerExec(), { uid: LEARNER_UID, gid: LEARNER_UID }), message);
}

function runWithArgs(args: string[], message: string) {
  return collect(spawn(hostLearnerExec(), args, { env: {}, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] }), message);
}

function collect(child: ChildProcess, message: Buffer | string) {
  let stdout = '';
  let stderr = '';
  // It may exit before reading what it was sent (bad ids).
  for (const stream of child.stdio) stream?.on('error', () => {});
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  child.stdin!.end();
  (child.stdio[3] as NodeJS.WritableStream).end(message);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('learner-exec, the program every exec starts as', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'learner-exec-')));
    await chmod(dir, 0o755);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const run = (command: string[], env: Record<string, string> = { PATH }, cwd = dir, stdin?: string) =>
    runDirectly(commandMessage({ cwd, env, command, stdin }));

  it('is a static program: no dynamic loader ever runs in it as root', () => {
    const elf = readFileSync(hostLearnerExec());
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    // ELF64 program headers: e_phoff at 32, e_phentsize at 54, e_phnum at 56; PT_INTERP (3) names a loader.
    const [offset, size, count] = [Number(elf.readBigUInt64LE(32)), elf.readUInt16LE(54), elf.readUInt16LE(56)];
    const types = Array.from({ length: count }, (_, i) => elf.readUInt32LE(offset + i * size));
    expect(types).toContain(1); // PT_LOAD
    expect(types).not.toContain(3);
  });

  it('becomes the learner: every uid and gid, no supplementary groups, no capabilities, no-new-privileges', async () => {
    const { code, stdout } = await run(['cat', '/proc/self/status']);
    expect(code).toBe(0);
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(stdout)![1]!.trim().split(/\s+/);
    expect(field('Uid')).toEqual(Array(4).fill(String(LEARNER_UID)));
    expect(field('Gid')).toEqual(Array(4).fill(String(LEARNER_UID)));
    expect(field('Groups')).toEqual(['']);
    expect(field('NoNewPrivs')).toEqual(['1']);
    for (const caps of ['CapPrm', 'CapEff', 'CapAmb']) expect(field(caps)).toEqual(['0000000000000000']);
  });

  it('passes exactly the variables it was sent, and runs in the folder', async () => {
    const env = { PATH, EMPTY: '', WITH_EQUALS: 'a=b=c', UNICODE: 'héllo wörld ✓', NEWLINE: 'one\ntwo' };
    const printed = await run(['env', '-0'], env);
    expect(printed.stdout.split('\0').filter(Boolean).sort()).toEqual(Object.entries(env).map(([k, v]) => `${k}=${v}`).sort());
    expect((await run(['pwd'])).stdout).toBe(`${dir}\n`);
  });

  it('looks the command up in the PATH it was sent: an empty entry is the folder, a folder of that name is no command', async () => {
    await writeFile(join(dir, 'here'), '#!/bin/sh\necho here "$@"\n', { mode: 0o755 });
    expect(await run(['here', 'a b'], { PATH: '/nowhere::/bin' })).toMatchObject({ code: 0, stdout: 'here a b\n' });
    expect(await run(['here'], { PATH: '/bin' })).toMatchObject({ code: 127, stderr: 'here: command not found\n' });
    await mkdir(join(dir, 'bin', 'folder'), { recursive: true });
    await chmod(join(dir, 'bin'), 0o755);
    expect(await run(['folder'], { PATH: join(dir, 'bin') })).toMatchObject({ code: 127, stderr: 'folder: command not found\n' });
    expect(await run([join(dir, 'bin', 'folder')])).toMatchObject({ code: 126, stderr: `${join(dir, 'bin', 'folder')}: permission denied\n` });
    expect(await run(['./missing'])).toMatchObject({ code: 127, stderr: './missing: command not found\n' });
  });

  it('runs a file without a #! line with /bin/sh, as a shell does', async () => {
    await writeFile(join(dir, 'plain'), 'echo "plain $1"\n', { mode: 0o755 });
    expect(await run(['./plain', 'arg'])).toMatchObject({ code: 0, stdout: 'plain arg\n' });
  });

  it('enters the folder as the learner: one only root may enter gives 126 and runs nothing', async () => {
    const closed = join(dir, 'closed');
    await mkdir(closed, { mode: 0o700 });
    const result = await run(['touch', 'created'], { PATH }, closed);
    expect(result).toMatchObject({ code: 126, stdout: '' });
    expect(result.stderr).toBe(`${closed}: cannot enter the folder: Permission denied\n`);
    await expect(readFile(join(closed, 'created'))).rejects.toThrow(/ENOENT/);
  });

  it('reads stdin from the agent when sent one, else from /dev/null', async () => {
    expect((await run(['readlink', '/proc/self/fd/0'])).stdout).toBe('/dev/null\n');
    expect((await run(['readlink', '/proc/self/fd/0'], { PATH }, dir, '')).stdout).toMatch(/^(pipe|socket):/);
  });

  it('refuses a malformed command or bad ids with 126 and runs nothing; an empty one (agent closing) exits 0', async () => {
    expect(await runDirectly('')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    for (const garbage of ['no nul at all', '/tmp\0', `/tmp\x000\x00x\0true\0`, `/tmp\x000\x005\0A=1\0true\0`, `/tmp\x000\x001\0A=1\0`]) {
      expect(await runDirectly(garbage)).toMatchObject({ code: 126, stdout: '', stderr: 'learner-exec: malformed command\n' });
    }
    expect(await runWithArgs(['-1', '1000'], 'x')).toMatchObject({ code: 126, stderr: 'learner-exec: bad id: -1\n' });
    expect(await runWithArgs(['1000'], 'x')).toMatchObject({ code: 126 });
  });

  it('refuses to build a message with a NUL byte, which would shift every field', () => {
    expect(() => commandMessage({ cwd: '/', env: { A: 'x\0y' }, command: ['true'] })).toThrow(/NUL/);
  });

  it('waits with an empty environment of its own', async () => {
    const child = startLearnerExec(hostLearnerExec(), { uid: LEARNER_UID, gid: LEARNER_UID });
    try {
      await vi.waitFor(() => expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).toContain('learner-exec'));
      expect(readFileSync(`/proc/${child.pid}/environ`)).toHaveLength(0);
    } finally {
      sendCommand(child, { cwd: '/', env: {}, command: ['true'] });
    }
  });
});

describe('learner-exec against a hostile learner, through the agent', () => {
  let agent: TestAgent;
  afterEach(async () => agent?.close());

  const exec = (body: object): Promise<ExecResult> => execOnAgent(agent, body);

  it('LD_PRELOAD, GLIBC_TUNABLES and GCONV_PATH reach only learner processes, never a root one', async () => {
    agent = await createTestAgent();
    // A library that logs the uid of every process it is loaded into.
    const log = join(agent.workspace, 'loaded-into');
    const source = join(agent.workspace, 'spy.c');
    const library = join(agent.workspace, 'spy.so');
    await writeFile(
      source,
      `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void spy(void) {` +
        ` FILE *f = fopen("${log}", "a"); if (f) { fprintf(f, "%d\\n", (int)getuid()); fclose(f); } }\n`,
    );
    execFileSync('gcc', ['-shared', '-fPIC', '-o', library, source]);
    await writeFile(log, '');
    await chmod(log, 0o666);
    const env = { LD_PRELOAD: library, GLIBC_TUNABLES: 'glibc.malloc.check=3', GCONV_PATH: agent.workspace, LOCPATH: agent.workspace };
    for (let round = 0; round < 3; round++) expect(await exec({ command: ['id', '-u'], env })).toMatchObject({ exit_code: 0, stdout: `${LEARNER_UID}\n` });
    const uids = (await readFile(log, 'utf8')).trim().split('\n');
    // `id` itself loads it, as the learner; nothing root ever did.
    expect(uids.length).toBeGreaterThanOrEqual(3);
    expect(new Set(uids)).toEqual(new Set([String(LEARNER_UID)]));
  });

  it('a learner process can neither signal nor read a waiting spare', async () => {
    agent = await createTestAgent();
    for (let round = 0; round < 3; round++) await exec({ command: ['true'] });
    const spares = () => execFileSync('pgrep', ['-P', String(process.pid), '-f', `^${agent.config.learnerExec} `], { encoding: 'utf8' }).trim().split('\n');
    await vi.waitFor(() => expect(spares()).toHaveLength(2));
    // This exec runs in the oldest spare; the other one waits meanwhile.
    const target = spares()[1]!;
    const script = 'kill -KILL "$1"; echo "kill $?"; cat "/proc/$1/environ"; echo "read $?"';
    const result = await exec({ command: ['sh', '-c', script, 'sh', target] });
    expect(result.stdout).toBe('kill 1\nread 1\n');
    expect(result.stderr).toMatch(/Operation not permitted[\s\S]*Permission denied/);
    expect(spares()).toContain(target);
    expect(readFileSync(`/proc/${target}/status`, 'utf8')).toMatch(/^Uid:\s+0\s+0\s+0\s+0$/m);
  });

  it('passes long and many arguments byte for byte', async () => {
    agent = await createTestAgent();
    const long = 'x'.repeat(100_000);
    expect((await exec({ command: ['printf', '%s', long] })).stdout).toBe(long);
    const many = Array.from({ length: 5000 }, (_, i) => `a${i}`);
    expect((await exec({ command: ['printf', '%s ', ...many] })).stdout).toBe(`${many.join(' ')} `);
  });
});
