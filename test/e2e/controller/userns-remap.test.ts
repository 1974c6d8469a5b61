import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Label } from '../../../controller/runtime/labels.js';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';
import { testEngineRemappedRoot } from '../../helpers/test-engine.js';

const remappedRoot = await testEngineRemappedRoot();
if (!remappedRoot) console.warn('test/e2e/controller/userns-remap.test.ts skipped: it needs an engine started with --userns-remap (scripts/ensure-docker.sh starts one on a fresh machine)');

// `docker exec` as root in the session, around the agent: what root inside can do.
async function execAsRoot(docker: Docker, containerName: string, command: string[]): Promise<{ exitCode: number; output: string }> {
  const exec = await docker.getContainer(containerName).exec({ Cmd: command, User: 'root', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  docker.modem.demuxStream(stream, output, output);
  await new Promise((resolve, reject) => stream.once('end', resolve).once('error', reject));
  return { exitCode: (await exec.inspect()).ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}

describe.skipIf(!remappedRoot).sequential("a session's root on a remapped engine is not the host's root", () => {
  const root = remappedRoot!;
  let ctl: E2EController;

  const expectOwnedBySessionRoot = async (sessionId: string): Promise<void> => {
    const { socketPath } = await ctl.agent(sessionId);
    for (const path of [dirname(socketPath), `${dirname(socketPath)}/token`]) {
      expect(await stat(path), path).toMatchObject({ uid: root.uid, gid: root.gid });
    }
  };

  beforeAll(async () => {
    await buildImages();
    ctl = await startE2EController({ WARM_POOL_SIZE: '1' });
  });
  afterAll(async () => ctl?.destroy());

  it('cannot write the host-wide core_pattern, although it has SYS_ADMIN and an unmasked /proc', async () => {
    // The first session claims the warm member; the pool then starts another, and this one starts cold.
    // /metrics is Prometheus text for a scraper, not part of the client: read raw.
    await vi.waitFor(async () => expect(String((await ctl.request('GET', '/metrics')).body)).toMatch(/^runner_warm_pool_ready 1$/m), { timeout: 120_000, interval: 200 });
    const claimed = await ctl.client.createSession({ session_id: 'remap-warm' });
    expect(ctl.lastResponse().status).toBe(201);
    // Served by the warm member (a failed claim would have started it cold): its token was replaced.
    expect((await ctl.docker.getContainer(claimed.container_name).inspect()).Config.Labels[Label.poolId]).toMatch(/^[0-9a-f]{12}$/);
    const created = await ctl.client.createSession({ session_id: 'remap-cold' });
    expect(ctl.lastResponse().status).toBe(201);

    const written = await execAsRoot(ctl.docker, created.container_name, ['sh', '-c', 'cat /proc/sys/kernel/core_pattern >/proc/sys/kernel/core_pattern']);
    expect(written.exitCode).not.toBe(0);
    expect(written.output).toMatch(/Permission denied|Operation not permitted/);
    // The same root still owns its own session: the hardening costs it nothing inside.
    expect(await execAsRoot(ctl.docker, created.container_name, ['sh', '-c', 'touch /etc/written-by-root && id -u'])).toEqual({ exitCode: 0, output: '0\n' });
  });

  it("gives the session's root its agent folder and token, also the token a warm claim replaced", async () => {
    await expectOwnedBySessionRoot('remap-cold');
    await expectOwnedBySessionRoot('remap-warm');
    for (const id of ['remap-cold', 'remap-warm']) {
      const hello = await ctl.client.session(id).exec({ command: ['sh', '-c', 'echo hello from $(id -u)'] });
      expect(hello).toMatchObject({ exit_code: 0, logs: ['hello from 1000'] });
    }
  });

  it("keeps the learner's processes in their own cgroup and runs inner containers", async () => {
    const cgroup = await ctl.client.session('remap-cold').exec({ command: ['cat', '/proc/self/cgroup'] });
    expect(cgroup.logs.join('\n')).toMatch(/:pids:\/learner\b/);
    const inner = await ctl.client.session('remap-cold').exec({ command: ['docker', 'run', '--rm', 'runner-busybox:latest', 'echo', 'inner ok'] });
    expect(inner).toMatchObject({ exit_code: 0, logs: ['inner ok'] });
  });

  it('hands the cgroup folders over again when the engine restarts a session whose agent died', async () => {
    const name = (await ctl.client.getSession('remap-cold')).container_name;
    const killed = await execAsRoot(ctl.docker, name, ['sh', '-c', 'for p in $(cat /proc/1/task/1/children); do grep -q agent/main.js /proc/$p/cmdline && kill -9 $p && echo killed; done']);
    expect(killed.output).toBe('killed\n');
    await vi.waitFor(async () => expect((await ctl.docker.getContainer(name).inspect()).RestartCount).toBe(1), { timeout: 30_000, interval: 200 });
    await vi.waitFor(async () => expect((await ctl.client.session('remap-cold').exec({ command: ['true'] })).exit_code).toBe(0), { timeout: 60_000, interval: 250 });
    const cgroup = await ctl.client.session('remap-cold').exec({ command: ['cat', '/proc/self/cgroup'] });
    expect(cgroup.logs.join('\n')).toMatch(/:pids:\/learner\b/);
  });
});
