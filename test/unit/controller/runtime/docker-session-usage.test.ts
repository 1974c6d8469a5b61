import type Docker from 'dockerode';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DockerSessionUsage, INSPECT_CONCURRENCY } from '../../../../controller/runtime/docker-session-usage.js';

const SESSIONS = 40;
const idOf = (i: number): string => i.toString(16).padStart(64, '0');

/**
 * An engine whose `docker inspect` answers only when the test releases it, counting how many are under way; each
 * container has a pid whose /proc/<pid>/cgroup and cgroup v2 folder exist below `root`.
 */
function slowEngine() {
  let underWay = 0;
  let mostAtOnce = 0;
  const waiting: (() => void)[] = [];
  const inspect = async (name: string): Promise<Docker.ContainerInspectInfo> => {
    underWay += 1;
    mostAtOnce = Math.max(mostAtOnce, underWay);
    await new Promise<void>((resolve) => waiting.push(resolve));
    underWay -= 1;
    const i = Number(name.replace('sess-', ''));
    return { Id: idOf(i), State: { Running: true, Pid: 1000 + i }, Mounts: [], Config: { Labels: {} } } as unknown as Docker.ContainerInspectInfo;
  };
  const docker = { getContainer: (name: string) => ({ inspect: () => inspect(name) }) } as unknown as Docker;
  return {
    docker,
    underWay: () => underWay,
    mostAtOnce: () => mostAtOnce,
    /** Answers the inspects waiting now; returns how many. */
    release: () => waiting.splice(0).map((resolve) => resolve()).length,
  };
}

describe('reading the usage of many sessions at once', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'session-usage-'));
    for (let i = 0; i < SESSIONS; i++) {
      const group = join(root, 'cgroup', `docker-${idOf(i)}.scope`);
      await mkdir(join(root, 'proc', `${1000 + i}`), { recursive: true });
      await writeFile(join(root, 'proc', `${1000 + i}`, 'cgroup'), `0::/docker-${idOf(i)}.scope\n`);
      await mkdir(group, { recursive: true });
      await writeFile(join(group, 'cgroup.procs'), `${1000 + i}\n`);
      await writeFile(join(group, 'pids.current'), '7\n');
    }
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it(`inspects at most ${INSPECT_CONCURRENCY} containers at a time on a cold start, and reads every one`, async () => {
    const engine = slowEngine();
    const usage = new DockerSessionUsage(engine.docker, async () => null, join(root, 'proc'), join(root, 'cgroup'));
    const reads = Promise.all(Array.from({ length: SESSIONS }, (_, i) => usage.read(`sess-${i}`)));
    let answered = 0;
    while (answered < SESSIONS) {
      await vi.waitFor(() => expect(engine.underWay()).toBe(Math.min(INSPECT_CONCURRENCY, SESSIONS - answered)));
      answered += engine.release();
    }
    const figures = await reads;
    expect(engine.mostAtOnce()).toBe(INSPECT_CONCURRENCY);
    expect(figures).toHaveLength(SESSIONS);
    for (const figure of figures) expect(figure).toMatchObject({ pids: 7 });
  });

  it('inspects a container once, then reads its cgroup without asking the engine', async () => {
    const engine = slowEngine();
    const usage = new DockerSessionUsage(engine.docker, async () => null, join(root, 'proc'), join(root, 'cgroup'));
    const first = usage.read('sess-3');
    await vi.waitFor(() => expect(engine.underWay()).toBe(1));
    engine.release();
    expect(await first).toMatchObject({ pids: 7 });
    expect(await usage.read('sess-3')).toMatchObject({ pids: 7 });
    expect(engine.mostAtOnce()).toBe(1);
    expect(engine.underWay()).toBe(0);
  });
});
