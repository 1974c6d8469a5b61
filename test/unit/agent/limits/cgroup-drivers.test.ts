import { spawn } from 'node:child_process';
import { chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectCgroupVersion } from '../../../../agent/limits/cgroup-driver.js';
import { CgroupV1 } from '../../../../agent/limits/cgroup-v1.js';
import { CgroupV2 } from '../../../../agent/limits/cgroup-v2.js';
import { ExecCgroup } from '../../../../agent/limits/exec-cgroup.js';
import { setUpLearnerCgroup } from '../../../../agent/limits/learner-cgroup.js';
import { LEARNER_UID } from '../../../helpers/test-agent.js';

// What the kernel shows in every v2 group, and in a group whose parent turned controllers on for its children.
const V2_CORE_FILES: Record<string, string> = {
  'cgroup.controllers': '',
  'cgroup.subtree_control': '',
  'cgroup.procs': '',
  'cgroup.threads': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.type': 'domain\n',
  'cgroup.freeze': '0\n',
  'cgroup.max.depth': 'max\n',
  'cgroup.max.descendants': 'max\n',
  'cgroup.stat': 'nr_descendants 0\nnr_dying_descendants 0\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
};
const V2_CONTROLLER_FILES: Record<string, Record<string, string>> = {
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n', 'pids.events': 'max 0\n' },
  cpu: { 'cpu.weight': '100\n', 'cpu.weight.nice': '0\n', 'cpu.max': 'max 100000\n' },
  memory: { 'memory.max': 'max\n', 'memory.current': '0\n', 'memory.high': 'max\n' },
};

/** Lays out a v2 group as the kernel does: core files, cgroup.kill (5.14+) if asked, and its controllers' files. */
async function layOutV2Group(dir: string, options: { controllers: string[]; available?: string[]; procs?: number[]; kill?: boolean; values?: Record<string, string> }): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files = { ...V2_CORE_FILES, 'cgroup.controllers': `${(options.available ?? []).join(' ')}\n`, 'cgroup.procs': (options.procs ?? []).map((pid) => `${pid}\n`).join('') };
  for (const controller of options.controllers) Object.assign(files, V2_CONTROLLER_FILES[controller]);
  Object.assign(files, options.values ?? {});
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content, { mode: name.startsWith('cgroup.') && name !== 'cgroup.controllers' ? 0o644 : 0o444 });
  if (options.kill) await writeFile(join(dir, 'cgroup.kill'), '', { mode: 0o200 });
}

/** A process to kill: it must be gone once the driver killed its group. */
function startSleeper(): { pid: number; exited: Promise<NodeJS.Signals | null> } {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  return { pid: child.pid!, exited: new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal))) };
}

const read = (path: string) => readFile(path, 'utf8');

describe('choosing the cgroup implementation', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cgroup-detect-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('takes v2 where the host mount has cgroup.controllers at its top, v1 otherwise', async () => {
    expect(detectCgroupVersion(dir)).toBe(1);
    await mkdir(join(dir, 'pids'));
    expect(detectCgroupVersion(dir)).toBe(1);
    await writeFile(join(dir, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    expect(detectCgroupVersion(dir)).toBe(2);
  });
});

describe('cgroup v2 (a cgroupfs tree made by the test)', () => {
  let dir: string;
  let root: string;
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logs.push(line) }) as unknown as FastifyBaseLogger;
  // A session's cgroup as its namespace's root: tini (1) and the agent in it, pids and cpu on for it by Docker.
  const sessionRoot = async (extra: { kill?: boolean; available?: string[] } = {}) =>
    layOutV2Group(root, { controllers: ['pids', 'cpu', 'memory'], available: extra.available ?? ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'], procs: [1, 7], kill: extra.kill, values: { 'pids.max': '2048\n' } });
  const mountinfo = () => `1093 1071 0:29 / ${root} rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n`;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cgroup-v2-'));
    root = join(dir, 'agent-cgroups');
    logs.length = 0;
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('moves the root’s processes into agent before turning on pids and cpu for its children, and limits the learner', async () => {
    await sessionRoot();
    const driver = new CgroupV2(root, 100);
    await driver.mount(mountinfo());
    expect(await driver.readSessionPidsMax()).toBe('2048\n');
    await driver.setUp({ pidsMax: '1984', agentCpuFactor: 10 }, 4242);
    // Each write moves one process; the last one written is the agent itself.
    expect(await read(join(root, 'agent', 'cgroup.procs'))).toBe('4242');
    expect(await read(join(root, 'cgroup.subtree_control'))).toBe('+pids +cpu');
    expect(await read(join(root, 'learner', 'pids.max'))).toBe('1984');
    expect(await read(join(root, 'learner', 'cpu.weight'))).toBe('100');
    expect(await read(join(root, 'agent', 'cpu.weight'))).toBe('1000');
    // Nothing is turned on below learner: its processes live in leaf groups, which need no controllers of their own.
    await expect(stat(join(root, 'learner', 'cgroup.subtree_control'))).rejects.toThrow(/ENOENT/);
  });

  it('turns on only the controllers the session has, and reads no pids limit where pids is off', async () => {
    await layOutV2Group(root, { controllers: ['cpu'], available: ['cpu', 'memory'], procs: [1] });
    const driver = new CgroupV2(root, 100);
    expect(await driver.readSessionPidsMax()).toBe('max');
    await driver.setUp({ pidsMax: 'max', agentCpuFactor: 10 }, 4242);
    expect(await read(join(root, 'cgroup.subtree_control'))).toBe('+cpu');
    await expect(stat(join(root, 'learner', 'pids.max'))).rejects.toThrow(/ENOENT/);
  });

  it("refuses to go on while the root's cgroup.procs, the common ancestor of every move, is not the agent's", async () => {
    await sessionRoot();
    await chown(join(root, 'cgroup.procs'), LEARNER_UID, LEARNER_UID);
    await expect(new CgroupV2(root, 100).mount(mountinfo())).rejects.toThrow(/cgroup\.procs is not the session root's/);
  });

  it('sets the learner up end to end: groups for execs, terminals, dockerd and helpers, every file root’s', async () => {
    await sessionRoot();
    const sysFsCgroup = join(dir, 'sys-fs-cgroup');
    await layOutV2Group(sysFsCgroup, { controllers: [], available: ['cpu', 'pids'] });
    const procSelf = join(dir, 'proc-self');
    await mkdir(join(procSelf, 'ns'), { recursive: true });
    await writeFile(join(procSelf, 'cgroup'), '0::/\n');
    await writeFile(join(procSelf, 'mountinfo'), mountinfo());
    await symlink('cgroup:[4026532999]', join(procSelf, 'ns', 'cgroup'));

    const setup = await setUpLearnerCgroup(log, { root, procSelf, sysFsCgroup, handOverWaitMs: 100 });
    expect(setup?.driver.version).toBe(2);
    expect(setup?.learnerPidsMax).toBe('1984');
    expect(setup?.procs).toEqual({
      terminals: [join(root, 'learner', 'terminals', 'cgroup.procs')],
      dockerd: [join(root, 'learner', 'dockerd', 'cgroup.procs')],
      helpers: [join(root, 'learner', 'helpers', 'cgroup.procs')],
    });
    expect((await readdir(join(root, 'learner'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()).toEqual(['dockerd', 'helpers', 'terminals']);
    const exec = await ExecCgroup.create(setup!.driver);
    expect(exec.procs).toEqual([join(root, exec.group, 'cgroup.procs')]);
    expect(exec.group).toMatch(/^learner\/exec-[0-9a-f]{12}$/);
    // The agent gives nothing to the learner: a learner process can join no group and leave none.
    const owners = async (folder: string): Promise<number[]> => {
      const entries = await readdir(folder, { withFileTypes: true });
      const nested = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => owners(join(folder, e.name))));
      return [(await stat(folder)).uid, ...(await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(join(folder, e.name))).uid))), ...nested.flat()];
    };
    expect(new Set(await owners(root))).toEqual(new Set([0]));
    expect(logs.join('')).toMatch(/"cgroupVersion":2/);
    await exec.release();
    await expect(stat(join(root, exec.group))).rejects.toThrow(/ENOENT/);
  });

  it('kills a group through cgroup.kill where the kernel has it', async () => {
    await sessionRoot({ kill: true });
    const driver = new CgroupV2(root, 100);
    await layOutV2Group(join(root, 'learner', 'exec-a'), { controllers: ['pids', 'cpu'], kill: true, procs: [99999] });
    await driver.kill('learner/exec-a');
    expect(await read(join(root, 'learner', 'exec-a', 'cgroup.kill'))).toBe('1');
  });

  it('stops, then kills every member where there is no cgroup.kill (before Linux 5.14)', async () => {
    await sessionRoot();
    const driver = new CgroupV2(root, 100);
    const sleeper = startSleeper();
    await layOutV2Group(join(root, 'learner', 'exec-b'), { controllers: ['pids', 'cpu'], procs: [sleeper.pid] });
    await driver.kill('learner/exec-b');
    expect(await sleeper.exited).toBe('SIGKILL');
  });

  it('lists the groups below one, and fails to remove one that still has a process (as the kernel answers EBUSY)', async () => {
    await sessionRoot();
    const driver = new CgroupV2(root, 100);
    await driver.makeGroup('learner/exec-c');
    await layOutV2Group(join(root, 'learner', 'exec-d'), { controllers: [], procs: [1] });
    expect((await driver.listGroups('learner')).sort()).toEqual(['exec-c', 'exec-d']);
    await driver.removeGroup('learner/exec-c');
    // A plain folder with files stands in for a busy group: rmdir fails on it too.
    await expect(driver.removeGroup('learner/exec-d')).rejects.toThrow(/ENOTEMPTY|EBUSY/);
    expect(await driver.listGroups('learner')).toEqual(['exec-d']);
  });
});

describe('cgroup v1 (a cgroupfs tree made by the test)', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'cgroup-v1-'));
    for (const [name, files] of [
      ['pids', { 'cgroup.procs': '1\n7\n', tasks: '1\n7\n', 'pids.max': '2048\n', 'pids.current': '3\n', notify_on_release: '0\n', 'cgroup.clone_children': '0\n' }],
      ['cpu', { 'cgroup.procs': '1\n7\n', tasks: '1\n7\n', 'cpu.shares': '1024\n', 'cpu.cfs_quota_us': '100000\n', 'cpu.cfs_period_us': '100000\n', 'cpuacct.usage': '0\n' }],
    ] as const) {
      await mkdir(join(root, name));
      for (const [file, content] of Object.entries(files)) await writeFile(join(root, name, file), content);
    }
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  const mountinfo = () => ['pids', 'cpu'].map((name) => `1${name.length} 25 0:3${name.length} / ${join(root, name)} rw - cgroup cgroup rw,${name}`).join('\n');

  it('makes every group in both hierarchies, limits the learner and moves only the agent', async () => {
    const driver = new CgroupV1(root, [{ name: 'pids', controllers: 'pids' }, { name: 'cpu', controllers: 'cpu,cpuacct' }], 100);
    await driver.mount(mountinfo());
    expect(await driver.readSessionPidsMax()).toBe('2048\n');
    await driver.setUp({ pidsMax: '1984', agentCpuFactor: 10 }, 4242);
    expect(await read(join(root, 'pids', 'learner', 'pids.max'))).toBe('1984');
    expect(await read(join(root, 'cpu', 'agent', 'cpu.shares'))).toBe('10240');
    expect(await read(join(root, 'cpu', 'learner', 'cpu.shares'))).toBe('1024');
    for (const name of ['pids', 'cpu']) expect(await read(join(root, name, 'agent', 'cgroup.procs'))).toBe('4242');
    await driver.makeGroup('learner/exec-e');
    expect(driver.procsFiles('learner/exec-e')).toEqual([join(root, 'pids', 'learner', 'exec-e', 'cgroup.procs'), join(root, 'cpu', 'learner', 'exec-e', 'cgroup.procs')]);
    expect(await driver.listGroups('learner')).toEqual(['exec-e']);
    await driver.removeGroup('learner/exec-e');
    expect(await driver.listGroups('learner')).toEqual([]);
  });

  it("kills every member of a group's pids group", async () => {
    const driver = new CgroupV1(root, [{ name: 'pids', controllers: 'pids' }, { name: 'cpu', controllers: 'cpu' }], 100);
    const sleeper = startSleeper();
    await mkdir(join(root, 'pids', 'learner', 'exec-f'), { recursive: true });
    await writeFile(join(root, 'pids', 'learner', 'exec-f', 'cgroup.procs'), `${sleeper.pid}\n`);
    await driver.kill('learner/exec-f');
    expect(await sleeper.exited).toBe('SIGKILL');
  });
});
