import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunnerError, type RunnerClient, type BuildFrame, type SessionClient } from '../../../client/src/index.js';
import { attachTerminal } from '../../../client/src/node.js';
import { startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

const TOKEN = 'client-e2e-token-0123456789abcdef';
const SESSION = 'client-e2e';

describe.sequential('the typed client against a real session', () => {
  let controller: E2EController;
  let runner: RunnerClient;
  let lab: SessionClient;
  beforeAll(async () => {
    controller = await startE2EController({ RUNNER_API_TOKEN: TOKEN });
    runner = controller.client;
    expect(await runner.createSession({ session_id: SESSION })).toMatchObject({ session_id: SESSION, status: 'running' });
    lab = runner.session(SESSION);
  }, 300_000);
  afterAll(async () => controller?.destroy());

  it("reports the session's agent and inner daemon healthy", async () => {
    expect(await lab.health()).toMatchObject({ status: 'healthy', daemon: { ready: true } });
  });

  it('builds an image, streaming the builder output to its done frame', async () => {
    await lab.writeFile('site/Dockerfile', 'FROM runner-busybox:latest\nRUN echo built-by-client > /msg\nCMD ["sh", "-c", "cat /msg; echo serving; httpd -f -p 8080 -h /"]\n');
    const frames: BuildFrame[] = [];
    for await (const frame of lab.buildStream({ context_path: '/workspace/site', image_tag: 'site:1' })) frames.push(frame);
    expect(frames.some((frame) => frame.type === 'log' && frame.line.includes('Step'))).toBe(true);
    expect(frames.at(-1)).toMatchObject({ type: 'done', image_tag: 'site:1' });
    expect((await lab.images()).images.some((image) => image.tags.includes('site:1'))).toBe(true);
  });

  it('carries a failed build’s logs in the error body', async () => {
    await lab.writeFile('broken/Dockerfile', 'FROM runner-busybox:latest\nRUN echo about-to-fail && exit 7\n');
    const error = await lab.build({ context_path: '/workspace/broken', image_tag: 'broken:1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunnerError);
    expect(error).toMatchObject({ code: 'BUILD_FAILED', status: 422 });
    expect((error as RunnerError).body.logs).toEqual(expect.arrayContaining([expect.stringContaining('about-to-fail')]));
  });

  it('runs a container, lists it, reads its logs and stops it', async () => {
    expect(await lab.run({ image: 'site:1', name: 'web', ports: ['8080:8080'] })).toMatchObject({ container_name: 'web' });
    const { containers } = await lab.containers();
    expect(containers.find((container) => container.name === 'web')).toMatchObject({ state: 'running', ports: expect.arrayContaining([expect.objectContaining({ container_port: 8080, host_port: 8080 })]) });
    let logs: string[] = [];
    for (let i = 0; i < 50 && !logs.includes('serving'); i++) logs = (await lab.containerLogs('web', 10)).logs;
    expect(logs).toEqual(['built-by-client', 'serving']);
    expect(await lab.stop({ container_name: 'web' })).toEqual({ container_name: 'web', stopped: true, removed: true });
    await expect(lab.containerLogs('web')).rejects.toMatchObject({ code: 'CONTAINER_NOT_FOUND' });
  });

  it('runs docker in a terminal attached from Node', async () => {
    const terminal = await attachTerminal(lab, runner.transport.authHeaders());
    let output = '';
    terminal.stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    terminal.stream.write('docker run --rm runner-busybox echo from-the-terminal\nexit\n');
    expect(await terminal.closed).toEqual({ code: 1000, reason: 'exit 0' });
    expect(output).toMatch(/^from-the-terminal/m);
  });

  it('moves a folder out as .tar.gz and into another folder, and refuses a hostile archive with its code', async () => {
    await lab.writeFile('/workspace/pack/a.txt', 'packed');
    const archive = await lab.downloadArchive('/workspace/pack');
    expect([archive[0], archive[1]]).toEqual([0x1f, 0x8b]);
    await lab.mkdir('/workspace/unpacked');
    await lab.uploadArchive('/workspace/unpacked', archive);
    expect(await lab.readText('/workspace/unpacked/a.txt')).toBe('packed');
    await expect(lab.uploadArchive('/workspace/unpacked', new TextEncoder().encode('not an archive at all'))).rejects.toMatchObject({
      code: 'ARCHIVE_INVALID',
    });
  });

  it('deletes the session keeping its workspace, which a new session of that id gets back', async () => {
    await lab.writeFile('/workspace/kept.txt', 'still mine');
    const deleted = await runner.deleteSession(SESSION, { keep_workspace: true });
    expect(deleted).toMatchObject({ session_id: SESSION, found: true, workspace_kept_until: expect.any(String) });
    expect(Date.parse(deleted.workspace_kept_until!)).toBeGreaterThan(Date.now());
    await expect(runner.getSession(SESSION)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    await runner.createSession({ session_id: SESSION });
    expect(await lab.readText('/workspace/kept.txt')).toBe('still mine');
  });

  it('deletes the session', async () => {
    const deleted = await runner.deleteSession(SESSION);
    expect(deleted).toMatchObject({ found: true });
    expect(deleted.workspace_kept_until).toBeUndefined();
    await expect(runner.getSession(SESSION)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
  });
});
