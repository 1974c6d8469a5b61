import { chown, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runProcess } from '../../../../agent/exec/run-process.js';
import { findHierarchy, learnerPidsMax, learnerSpawn, setUpLearnerCgroup, waitUntilOwned } from '../../../../agent/limits/learner-cgroup.js';
import { LEARNER_UID } from '../../../helpers/test-agent.js';

const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' };

describe('learner cgroup limits', () => {
  it('leaves the agent a reserve of the session pids limit, at most half of it', () => {
    expect(learnerPidsMax('2048\n')).toBe('1984');
    expect(learnerPidsMax('100', 64)).toBe('50');
    expect(learnerPidsMax('1')).toBe('1');
    expect(learnerPidsMax('max\n')).toBe('max');
  });

  it("finds the agent's v1 hierarchy of a controller, joined with others or alone", () => {
    const cgroups = '9:name=systemd:/\n8:pids:/docker/abc\n2:cpu,cpuacct:/x:y\n0::/\n';
    expect(findHierarchy(cgroups, 'pids')).toEqual({ controllers: 'pids', path: '/docker/abc' });
    expect(findHierarchy(cgroups, 'cpu')).toEqual({ controllers: 'cpu,cpuacct', path: '/x:y' });
    expect(findHierarchy('0::/\n', 'pids')).toBeUndefined();
  });

  it('spawns the command unchanged when there is no learner cgroup', () => {
    expect(learnerSpawn(undefined, ['ls', '-l'], env)).toEqual({ file: 'ls', args: ['-l'], env });
  });
});

describe('joining the learner cgroup before the command runs', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'learner-cgroup-'));
    await chown(dir, LEARNER_UID, LEARNER_UID);
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  // Plain files stand in for cgroup.procs: what the process writes there is what the kernel would move.
  const procsFiles = async (): Promise<string[]> => {
    const files = [join(dir, "pids procs"), join(dir, "cpu'procs")];
    for (const file of files) {
      await writeFile(file, '');
      await chown(file, LEARNER_UID, LEARNER_UID);
    }
    return files;
  };

  const runAsLearner = (command: string[], cgroupProcs: readonly string[], extraEnv: Record<string, string> = {}) =>
    runProcess({ command, cgroupProcs, cwd: dir, env: { ...env, ...extraEnv }, uid: LEARNER_UID, gid: LEARNER_UID, timeoutMs: 10_000, outputLimitBytes: 65_536 });

  it('writes its own pid to every cgroup.procs, then execs the command with its arguments intact', async () => {
    const procs = await procsFiles();
    const result = await runAsLearner(['sh', '-c', 'echo "$$ $1|$2"', 'sh', 'two words', "it's"], procs);
    expect(result).toMatchObject({ exit_code: 0, stderr: '' });
    const pid = result.stdout.split(' ')[0];
    expect(result.stdout).toBe(`${pid} two words|it's\n`);
    for (const file of procs) expect(await readFile(file, 'utf8')).toBe(`${pid}\n`);
  });

  it('hands the command exactly its environment, whatever the values', async () => {
    const extra = { MULTI: 'a b\nc=d', EMPTY: '', DASHES: '--', IFS: '0123456789' };
    const result = await runAsLearner(['env', '-0'], await procsFiles(), extra);
    const variables = result.stdout.split('\0').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
    expect(Object.fromEntries(variables)).toEqual({ ...env, ...extra });
  });

  it('joins as itself although the environment sets IFS to digits', async () => {
    const procs = await procsFiles();
    const result = await runAsLearner(['sh', '-c', 'echo "$$"'], procs, { IFS: '0123456789' });
    for (const file of procs) expect(await readFile(file, 'utf8')).toBe(result.stdout);
  });

  it('answers 127 and 126 with the messages of a command started without the cgroup', async () => {
    const procs = await procsFiles();
    expect(await runAsLearner(['no-such-program-xyz'], procs)).toMatchObject({ exit_code: 127, stderr: 'no-such-program-xyz: command not found\n' });
    await writeFile(join(dir, 'script.sh'), '#!/bin/sh\necho ran\n', { mode: 0o644 });
    expect(await runAsLearner(['./script.sh'], procs)).toMatchObject({ exit_code: 126, stdout: '', stderr: './script.sh: permission denied\n' });
    expect(await runAsLearner(['./no-such-file'], procs)).toMatchObject({ exit_code: 127 });
  });

  it('runs nothing when it cannot join', async () => {
    const procs = await procsFiles();
    await chown(procs[1]!, 0, 0);
    const result = await runAsLearner(['touch', 'ran'], procs);
    expect(result.exit_code).toBe(126);
    await expect(stat(join(dir, 'ran'))).rejects.toThrow(/ENOENT/);
  });
});

describe('setting up the learner cgroup', () => {
  let dir: string;
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) }) as unknown as FastifyBaseLogger;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'learner-cgroup-setup-'));
    warnings.length = 0;
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const fakeProcSelf = async (cgroups: string, cgroupNs: string): Promise<string> => {
    const procSelf = join(dir, 'proc-self');
    await mkdir(join(procSelf, 'ns'), { recursive: true });
    await writeFile(join(procSelf, 'cgroup'), cgroups);
    await writeFile(join(procSelf, 'mountinfo'), '');
    await symlink(cgroupNs, join(procSelf, 'ns', 'cgroup'));
    return procSelf;
  };

  it.each([
    { where: 'cgroup v2', cgroups: '0::/\n', ns: 'cgroup:[4026532999]' },
    { where: "the host's cgroup namespace", cgroups: '8:pids:/\n1:cpu:/\n', ns: 'cgroup:[4026531835]' },
    { where: 'a cgroup below its namespace root', cgroups: '8:pids:/docker/abc\n1:cpu:/docker/abc\n', ns: 'cgroup:[4026532999]' },
  ])('carries on without it, with one warning, on $where', async ({ cgroups, ns }) => {
    const root = join(dir, 'cgroups');
    const setup = await setUpLearnerCgroup({ uid: LEARNER_UID, gid: LEARNER_UID }, log, { root, procSelf: await fakeProcSelf(cgroups, ns) });
    expect(setup).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/a fork bomb can stall the agent/);
    // Nothing was mounted or made.
    await expect(stat(root)).rejects.toThrow(/ENOENT/);
  });
});

describe("waiting for the session's cgroup folders", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'learner-cgroup-owner-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('goes on as soon as the folder is handed to the agent', async () => {
    await chown(dir, LEARNER_UID, LEARNER_UID);
    const waiting = waitUntilOwned(dir, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await chown(dir, 0, 0);
    expect(await waiting).toBe(true);
  });

  it('gives up when the folder stays someone else\'s', async () => {
    await chown(dir, LEARNER_UID, LEARNER_UID);
    expect(await waitUntilOwned(dir, 300)).toBe(false);
  });
});
