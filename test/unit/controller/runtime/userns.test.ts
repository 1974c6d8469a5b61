import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cgroupFolders,
  checkRemappedHost,
  findRemappedRoot,
  handOverAgentDir,
  handOverCgroups,
  parseSubordinateIds,
  remappedIdCount,
  SESSION_REMAP_IDS,
} from '../../../../controller/runtime/userns.js';
import { LEARNER_UID } from '../../../helpers/test-agent.js';

const run = promisify(execFile);
// A stand-in for the remapped root: any uid other than the test's own shows who owns what.
const ROOT = { uid: LEARNER_UID, gid: LEARNER_UID };

describe('telling a remapped engine', () => {
  it('finds the remapped root in the data root of an engine with the userns option', () => {
    const info = { SecurityOptions: ['name=seccomp,profile=default', 'name=userns'], DockerRootDir: '/var/lib/docker/100000.100001' };
    expect(findRemappedRoot(info)).toEqual({ uid: 100000, gid: 100001 });
  });

  it('answers null for an engine without the userns option, whatever its data root', () => {
    expect(findRemappedRoot({ SecurityOptions: ['name=seccomp,profile=default'], DockerRootDir: '/var/lib/docker/5.5' })).toBeNull();
    expect(findRemappedRoot({})).toBeNull();
  });

  it('refuses a remapped engine whose data root does not name its root', () => {
    expect(() => findRemappedRoot({ SecurityOptions: ['name=userns'], DockerRootDir: '/var/lib/docker' })).toThrow(/does not name the remapped root/);
  });
});

describe('reading /etc/subuid and /etc/subgid', () => {
  it('reads user:start:count lines and leaves out comments and malformed ones', () => {
    const text = '# ranges\nlearner:100000:65536\n\ndockremap:165536:165536\nbroken:1\nalso:x:2\n  spaced:5:6  \n';
    expect(parseSubordinateIds(text)).toEqual([
      { user: 'learner', start: 100000, count: 65536 },
      { user: 'dockremap', start: 165536, count: 165536 },
      { user: 'spaced', start: 5, count: 6 },
    ]);
  });

  it("counts every range of the user whose first range starts at the remapped root", () => {
    const ranges = parseSubordinateIds('dockremap:100000:65536\nother:300000:10\ndockremap:500000:100000\n');
    expect(remappedIdCount(ranges, 100000)).toBe(165536);
    expect(remappedIdCount(ranges, 500000)).toBeUndefined();
    expect(remappedIdCount(ranges, 1)).toBeUndefined();
  });
});

describe('checking the host of a remapped engine', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'userns-host-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const host = async (subuid: string, subgid: string, tunMode: number): Promise<string[]> => {
    await writeFile(join(dir, 'subuid'), subuid);
    await writeFile(join(dir, 'subgid'), subgid);
    await writeFile(join(dir, 'tun'), '');
    await chmod(join(dir, 'tun'), tunMode);
    return checkRemappedHost({ uid: 100000, gid: 100000 }, dir, join(dir, 'tun'));
  };

  it('finds nothing wrong with a large enough range and an open tun device', async () => {
    const ranges = `dockremap:100000:${SESSION_REMAP_IDS}\n`;
    expect(await host(ranges, ranges, 0o666)).toEqual([]);
  });

  it("names dockerd's default range as too small, and a root-only tun device", async () => {
    const problems = await host('dockremap:100000:65536\n', `dockremap:100000:${SESSION_REMAP_IDS}\n`, 0o600);
    expect(problems).toEqual([expect.stringMatching(/subuid maps 65536 ids from 100000: .* needs 165536/), expect.stringMatching(/tun has mode 600/)]);
  });

  it('judges nothing it cannot read', async () => {
    expect(await checkRemappedHost({ uid: 100000, gid: 100000 }, join(dir, 'missing'), join(dir, 'missing-tun'))).toEqual([]);
  });
});

describe("handing the agent's folder to the session's root", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'userns-agent-'));
    await mkdir(join(dir, 'agent'), { mode: 0o700 });
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('gives it the folder and the token file, modes unchanged', async () => {
    const agent = join(dir, 'agent');
    await writeFile(join(agent, 'token'), 'secret', { mode: 0o600 });
    await handOverAgentDir(agent, ROOT);
    for (const path of [agent, join(agent, 'token')]) expect(await stat(path)).toMatchObject({ uid: ROOT.uid, gid: ROOT.gid });
    expect((await stat(join(agent, 'token'))).mode & 0o777).toBe(0o600);
  });

  it('never follows a token swapped for a link to a host file', async () => {
    const hostFile = join(dir, 'host-secret');
    await writeFile(hostFile, 'host', { mode: 0o600 });
    await symlink(hostFile, join(dir, 'agent', 'token'));
    await expect(handOverAgentDir(join(dir, 'agent'), ROOT)).rejects.toThrow(/ELOOP/);
    expect(await stat(hostFile)).toMatchObject({ uid: 0, gid: 0 });
  });

  it('refuses a token that is a pipe, without waiting for a writer', async () => {
    await run('mkfifo', [join(dir, 'agent', 'token')]);
    await expect(handOverAgentDir(join(dir, 'agent'), ROOT)).rejects.toThrow(/not a regular file/);
  });
});

describe("handing the session's cgroup folders to its root", () => {
  const ID = 'f00dcafe';
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'userns-cgroup-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const procCgroup = `12:memory:/docker/${ID}\n8:pids:/docker/${ID}\n2:cpu,cpuacct:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/\n`;

  it('finds the pids and cpu folders of a v1 host, none of a v2 one', () => {
    expect(cgroupFolders(procCgroup, '/sys/fs/cgroup')).toEqual([`/sys/fs/cgroup/pids/docker/${ID}`, `/sys/fs/cgroup/cpu,cpuacct/docker/${ID}`]);
    expect(cgroupFolders('0::/system.slice/docker-x.scope\n', '/sys/fs/cgroup')).toEqual([]);
  });

  const fakeHost = async (cgroupOfPid: string): Promise<{ proc: string; cgroups: string }> => {
    const proc = join(dir, 'proc');
    const cgroups = join(dir, 'cgroup');
    await mkdir(join(proc, '42'), { recursive: true });
    await writeFile(join(proc, '42', 'cgroup'), cgroupOfPid);
    for (const hierarchy of ['pids', 'cpu,cpuacct']) await mkdir(join(cgroups, hierarchy, 'docker', ID), { recursive: true });
    return { proc, cgroups };
  };

  it("gives the session's root exactly those folders", async () => {
    const { proc, cgroups } = await fakeHost(procCgroup);
    const folders = await handOverCgroups({ id: ID, pid: 42 }, ROOT, proc, cgroups);
    expect(folders).toHaveLength(2);
    for (const folder of folders) expect(await stat(folder)).toMatchObject({ uid: ROOT.uid, gid: ROOT.gid });
    expect(await stat(join(cgroups, 'pids', 'docker'))).toMatchObject({ uid: 0 });
  });

  it("hands over nothing when the pid is no longer the container's", async () => {
    const { proc, cgroups } = await fakeHost('8:pids:/user.slice\n2:cpu,cpuacct:/user.slice\n');
    await mkdir(join(cgroups, 'pids', 'user.slice'));
    await expect(handOverCgroups({ id: ID, pid: 42 }, ROOT, proc, cgroups)).rejects.toThrow(/not in container/);
    expect(await stat(join(cgroups, 'pids', 'user.slice'))).toMatchObject({ uid: 0 });
  });
});
