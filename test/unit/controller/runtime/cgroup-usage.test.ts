import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { containerCgroupOf, parseV1Usage, parseV2Usage, readCgroupUsage } from '../../../../controller/runtime/cgroup-usage.js';

// Recorded from a real session on this project's cgroup v1 host (cgroupfs driver): test/fixtures/cgroup/record.ts.
const V1 = new URL('../../../fixtures/cgroup/v1/', import.meta.url).pathname;
const V1_ROOT = join(V1, 'sys-fs-cgroup');
const ID = 'a'.repeat(64);

describe('finding a container’s cgroup from /proc/<pid>/cgroup', () => {
  it('finds the v1 hierarchies of a recorded session (cgroupfs driver), not the hybrid host’s empty unified one', async () => {
    const id = (await readFile(join(V1, 'container-id'), 'utf8')).trim();
    const cgroup = containerCgroupOf(await readFile(join(V1, 'proc-cgroup'), 'utf8'), id, '/sys/fs/cgroup');
    expect(cgroup).toEqual({
      version: 1,
      memory: `/sys/fs/cgroup/memory/docker/${id}`,
      cpuacct: `/sys/fs/cgroup/cpuacct/docker/${id}`,
      pids: `/sys/fs/cgroup/pids/docker/${id}`,
    });
  });

  it('follows the systemd driver’s scope and co-mounted cpu,cpuacct, cut at the container’s folder', () => {
    const proc = [
      `5:memory:/system.slice/docker-${ID}.scope`,
      `3:cpu,cpuacct:/system.slice/docker-${ID}.scope/learner`,
      `2:pids:/system.slice/docker-${ID}.scope/agent`,
      `0::/system.slice/docker-${ID}.scope`,
    ].join('\n');
    expect(containerCgroupOf(proc, ID, '/cg')).toEqual({
      version: 1,
      memory: `/cg/memory/system.slice/docker-${ID}.scope`,
      cpuacct: `/cg/cpu,cpuacct/system.slice/docker-${ID}.scope`,
      pids: `/cg/pids/system.slice/docker-${ID}.scope`,
    });
  });

  it('takes the unified hierarchy on a cgroup v2 host, above the agent’s own sub-group', () => {
    expect(containerCgroupOf(`0::/system.slice/docker-${ID}.scope/agent\n`, ID, '/cg')).toEqual({ version: 2, dir: `/cg/system.slice/docker-${ID}.scope` });
    expect(containerCgroupOf(`0::/docker/${ID}/agent\n`, ID, '/cg')).toEqual({ version: 2, dir: `/cg/docker/${ID}` });
  });

  it('finds nothing when no path names the container (its pid ended and was reused by a host process)', () => {
    expect(containerCgroupOf('4:memory:/user.slice\n2:cpuacct:/user.slice\n8:pids:/user.slice\n0::/user.slice\n', ID)).toBeNull();
    expect(containerCgroupOf('', ID)).toBeNull();
  });
});

describe('reading a container’s usage from its cgroup files', () => {
  it('reads a recorded v1 session as docker stats counts it', async () => {
    const id = (await readFile(join(V1, 'container-id'), 'utf8')).trim();
    const file = async (path: string) => (await readFile(join(V1_ROOT, path), 'utf8')).trim();
    const cgroup = containerCgroupOf(await readFile(join(V1, 'proc-cgroup'), 'utf8'), id, V1_ROOT);
    const usage = await readCgroupUsage(cgroup!);
    const inactiveFile = Number(/^total_inactive_file (\d+)$/m.exec(await file(`memory/docker/${id}/memory.stat`))![1]);
    expect(usage).toEqual({
      memoryBytes: Number(await file(`memory/docker/${id}/memory.usage_in_bytes`)) - inactiveFile,
      memoryLimitBytes: 1536 * 2 ** 20,
      cpuSeconds: Number(await file(`cpuacct/docker/${id}/cpuacct.usage`)) / 1e9,
      pids: Number(await file(`pids/docker/${id}/pids.current`)),
    });
    expect(usage.memoryBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(usage.pids).toBeGreaterThan(2);
  });

  it('reads no limit as null (v1’s page-rounded 2^63-1, v2’s "max")', () => {
    const v1 = parseV1Usage({ usage: '1000\n', limit: '9223372036854771712\n', stat: 'total_inactive_file 0\n', cpu: '5\n', pids: '1\n' });
    expect(v1.memoryLimitBytes).toBeNull();
    const v2 = parseV2Usage({ current: '1000\n', max: 'max\n', stat: null, cpu: 'usage_usec 2500000\nuser_usec 1\n', pids: null });
    expect(v2).toEqual({ memoryBytes: 1000, memoryLimitBytes: null, cpuSeconds: 2.5, pids: null });
  });

  describe('cgroup v2 files', () => {
    let root: string;
    beforeEach(async () => {
      root = await mkdtemp(join(tmpdir(), 'cgroup-v2-'));
    });
    afterEach(async () => {
      await rm(root, { recursive: true, force: true });
    });

    // Written in the kernel's format (Documentation/admin-guide/cgroup-v2.rst): this project's hosts run v1.
    it('reads memory less inactive file cache, the limit, CPU microseconds and pids', async () => {
      const dir = join(root, `system.slice/docker-${ID}.scope`);
      await mkdir(dir, { recursive: true });
      const files = {
        'cgroup.procs': '',
        'memory.current': '73400320\n',
        'memory.max': '1610612736\n',
        'memory.stat': 'anon 60000000\nfile 12000000\nactive_file 8000000\ninactive_file 3400320\n',
        'cpu.stat': 'usage_usec 4250000\nuser_usec 3000000\nsystem_usec 1250000\n',
        'pids.current': '41\n',
      };
      for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
      expect(await readCgroupUsage({ version: 2, dir })).toEqual({ memoryBytes: 70_000_000, memoryLimitBytes: 1610612736, cpuSeconds: 4.25, pids: 41 });
    });

    it('throws ENOENT once the container’s group is gone, rather than reading all nulls', async () => {
      await expect(readCgroupUsage({ version: 2, dir: join(root, 'gone') })).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });

  it('throws ENOENT for a v1 container whose folders are gone (stopped or removed)', async () => {
    const gone = join(V1_ROOT, 'memory/docker/gone');
    await expect(readCgroupUsage({ version: 1, memory: gone, cpuacct: gone, pids: gone })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
