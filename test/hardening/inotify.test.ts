import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunnerClient } from '../../client/src/index.js';
import { inotifyLimitsFor, SESSION_INOTIFY_QUOTA } from '../../controller/runtime/host-limits.js';
import { buildImages } from '../helpers/controller-e2e.js';
import { hardeningController, sweepHardeningLeftovers } from './hardening-controller.js';

/*
 * Every session's user namespace is the engine's, that is the host root's: the kernel charges all their inotify
 * instances and watches to root's limits. The controller raises those to cover MAX_SESSIONS, and gives each session
 * its own quota, so that a learner who takes every inotify instance they can leaves the other sessions' watches be.
 */

const HOG = 'inotify-hog';
const OTHER = 'inotify-other';
const MAX_SESSIONS = 4;
const HOLD_SECONDS = 40;

// Makes inotify instances until the kernel refuses, writes how many to a file, then holds them.
const hog = (seconds: number) => `python3 -c "
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 100000 and libc.inotify_init1(0) >= 0:
    fds.append(1)
with open('/tmp/hog.txt', 'w') as f:
    f.write(str(len(fds)) + ' ' + os.strerror(ctypes.get_errno()))
time.sleep(${seconds})
"`;

describe.sequential('inotify across sessions', () => {
  const ctl = hardeningController({ env: { MAX_SESSIONS: String(MAX_SESSIONS) } });

  beforeAll(async () => {
    await buildImages();
    await sweepHardeningLeftovers();
    await ctl.start();
    await ctl.createSession(HOG);
    await ctl.createSession(OTHER);
  }, 240_000);

  afterAll(async () => {
    await ctl.destroy();
  }, 60_000);

  it('the host allows every session its quota', async () => {
    const read = async (name: string) => Number(await readFile(`/proc/sys/fs/inotify/${name}`, 'utf8'));
    const needed = inotifyLimitsFor(MAX_SESSIONS, { maxUserInstances: 0, maxUserWatches: 0 });
    expect(await read('max_user_instances')).toBeGreaterThanOrEqual(needed.maxUserInstances);
    expect(await read('max_user_watches')).toBeGreaterThanOrEqual(needed.maxUserWatches);
  });

  it('a learner cannot raise their quota', async () => {
    const result = await ctl.exec(HOG, ['sh', '-c', 'cat /proc/sys/user/max_inotify_instances; echo 1000000 > /proc/sys/user/max_inotify_instances || echo refused']);
    expect(result.stdout.trim().split('\n')).toEqual([String(SESSION_INOTIFY_QUOTA.instances), 'refused']);
  });

  it("a learner who takes every inotify instance they can leaves another session's watch working", async () => {
    const holding = ctl.exec(HOG, ['sh', '-c', hog(HOLD_SECONDS)], { timeoutSeconds: HOLD_SECONDS + 30 });
    let made = '';
    for (let i = 0; i < 60 && !made; i++) {
      await sleep(500);
      made = (await ctl.exec(HOG, ['sh', '-c', 'cat /tmp/hog.txt 2>/dev/null || true'])).stdout.trim();
    }
    // Stopped by its session's quota (the learner's inner daemon may hold a few), not by the host's limit.
    const [count, why] = [Number(made.split(' ')[0]), made.split(' ').slice(1).join(' ')];
    expect(count).toBeLessThanOrEqual(SESSION_INOTIFY_QUOTA.instances);
    expect(count).toBeGreaterThan(SESSION_INOTIFY_QUOTA.instances - 8);
    expect(why).toBe('Too many open files');

    // Meanwhile a watch opens in the other session and reports a file written there.
    const client = new RunnerClient({ baseUrl: ctl.url, token: ctl.token });
    const abort = new AbortController();
    const frames: string[] = [];
    const watching = (async () => {
      for await (const frame of client.session(OTHER).watch({ signal: abort.signal })) {
        frames.push(frame.type === 'created' ? `created ${frame.path}` : frame.type);
        if (frame.type === 'ready') await client.session(OTHER).writeFile('/workspace/seen.txt', 'yes\n');
        if (frame.type !== 'ready') break;
      }
    })();
    await Promise.race([watching, sleep(20_000)]);
    abort.abort();
    expect(frames).toEqual(['ready', 'created seen.txt']);
    await holding;
  }, 120_000);
});
