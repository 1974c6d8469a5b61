import { spawn } from 'node:child_process';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const REPO = new URL('../../..', import.meta.url).pathname;

interface Started {
  code: number | null;
  stderr: string;
  stdout: string;
}

/**
 * Starts the agent as `npm run agent` does, with only `env` (plus PATH); stops it once `until` matches its output
 * (it then keeps running), or waits for it to exit on its own.
 */
function startAgent(env: Record<string, string>, until?: RegExp): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    let stderr = '';
    // An agent that neither exits nor says what `until` waits for is stopped, so a failing test leaves no process.
    const deadline = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const check = () => {
      if (until && until.test(stdout)) child.kill('SIGTERM');
    };
    child.stdout.on('data', (d: Buffer) => ((stdout += d.toString()), check()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the agent on its own: start-up', () => {
  let root: string;
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const fresh = async () => (root = await mkdtemp(join(tmpdir(), 'agent-start-')));

  it('refuses a missing workspace folder with one line and exit code 2', async () => {
    const dir = await fresh();
    const result = await startAgent({ AGENT_WORKSPACE: join(dir, 'nowhere'), AGENT_SOCKET: join(dir, 'agent.sock') });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`agent: invalid configuration: AGENT_WORKSPACE: ${join(dir, 'nowhere')}: no such folder\n`);
  });

  it('refuses a workspace that is a file with one line and exit code 2', async () => {
    const dir = await fresh();
    const result = await startAgent({ AGENT_WORKSPACE: '/etc/hostname', AGENT_SOCKET: join(dir, 'agent.sock') });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('agent: invalid configuration: AGENT_WORKSPACE: /etc/hostname is not a folder\n');
  });

  it('as root, refuses a root-owned workspace unless told who the learner is, with a hint', async () => {
    expect(process.getuid?.(), 'these tests run as root, as npm test does').toBe(0);
    const dir = await fresh();
    const workspace = join(dir, 'ws');
    await mkdir(workspace);
    const result = await startAgent({ AGENT_WORKSPACE: workspace, AGENT_SOCKET: join(dir, 'agent.sock') });
    expect(result.code).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`AGENT_WORKSPACE: ${workspace} belongs to root`);
    expect(result.stderr).toContain(`chown 1000:1000 ${workspace}`);
  });

  it('as root, runs learner processes as the workspace owner and says which engine it drives as whom', async () => {
    const dir = await fresh();
    const workspace = join(dir, 'ws');
    await mkdir(workspace);
    await chown(workspace, 1234, 1235);
    const result = await startAgent(
      { AGENT_WORKSPACE: workspace, AGENT_SOCKET: join(dir, 'agent.sock') },
      /listening on unix socket/,
    );
    expect(result.stderr).toBe('');
    const lines = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const engine = lines.find((l) => l.docker_host !== undefined);
    expect(engine).toMatchObject({
      docker_host: 'unix:///var/run/docker.sock',
      agent_uid: 0,
      learner_uid: 1234,
      learner_gid: 1235,
      msg: 'build/run/stop drive the Docker engine at unix:///var/run/docker.sock as uid 0; exec and terminal run as uid 1234',
    });
    expect(lines.some((l) => String(l.msg).includes("this machine's own"))).toBe(true);
  });

  it('as root, keeps an explicit AGENT_LEARNER_UID even on a root-owned workspace', async () => {
    const dir = await fresh();
    const workspace = join(dir, 'ws');
    await mkdir(workspace);
    const result = await startAgent(
      { AGENT_WORKSPACE: workspace, AGENT_SOCKET: join(dir, 'agent.sock'), AGENT_LEARNER_UID: '1000', DOCKER_HOST: 'unix:///nowhere.sock' },
      /listening on unix socket/,
    );
    const engine = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.docker_host);
    expect(engine).toMatchObject({ docker_host: 'unix:///nowhere.sock', learner_uid: 1000 });
    expect(result.stdout).not.toContain("this machine's own");
  });
});
