import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import seccompProfile from '../../../image/seccomp.json' with { type: 'json' };
import type { AgentHealth } from '../../../shared/schemas/health.js';
import type { SessionHostConfig } from '../../../controller/runtime/session-security.js';
import { removeLeftovers, startSession, type SessionContainer } from '../../helpers/session-container.js';

const PREFIX = 'rse2e-flags';

/** What went wrong in a session started without one of its flags. */
interface Breakage {
  /** `daemon`: the inner daemon never came up; `run`: it did, but an inner `docker run` failed. */
  stage: 'daemon' | 'run';
  error: string;
}

// A daemon that cannot start fails within seconds; one that can is healthy within seconds.
const BREAKAGE_TIMEOUT_MS = 90_000;

/** Waits for the first failed daemon start, or for health and then an inner `docker run`; fails when neither comes. */
async function observeBreakage(session: SessionContainer): Promise<Breakage> {
  return vi.waitFor(
    async (): Promise<Breakage> => {
      const answer = await session.call<AgentHealth>('GET', '/health').catch((error: Error) => {
        throw new Error(`within ${BREAKAGE_TIMEOUT_MS / 1000} s the daemon neither failed nor became healthy: the agent does not answer (${error.message})`);
      });
      const health = answer.body;
      if (health.daemon?.last_error && health.daemon.restarts > 0) return { stage: 'daemon', error: health.daemon.last_error };
      if (health.status === 'healthy') {
        const run = await session.exec(['docker', 'run', '--rm', 'runner-busybox', 'true']);
        return run.exit_code === 0 ? { stage: 'run', error: '' } : { stage: 'run', error: run.stderr };
      }
      throw new Error(`within ${BREAKAGE_TIMEOUT_MS / 1000} s the daemon neither failed nor became healthy: the agent answers ${answer.status} ${JSON.stringify(health)}`);
    },
    { timeout: BREAKAGE_TIMEOUT_MS, interval: 250 },
  );
}

/** Our seccomp profile less one of the syscalls it adds to Docker's default. */
function profileWithout(syscall: string): string {
  const profile = structuredClone(seccompProfile) as { syscalls: Array<{ names: string[] }> };
  for (const rule of profile.syscalls) rule.names = rule.names.filter((name) => name !== syscall);
  return `seccomp=${JSON.stringify(profile)}`;
}

const without =
  (change: (config: Docker.HostConfig) => void) =>
  (config: Docker.HostConfig): Docker.HostConfig => {
    change(config);
    return config;
  };

describe.sequential('each session flag is needed', () => {
  let session: SessionContainer | undefined;
  beforeAll(async () => removeLeftovers(PREFIX));
  afterEach(async () => {
    await session?.remove();
    session = undefined;
  });
  afterAll(async () => removeLeftovers(PREFIX));

  it.each([
    {
      flag: '--cap-add SYS_ADMIN',
      hostConfig: without((c) => delete c.CapAdd),
      stage: 'daemon',
      error: /failed to start the child: fork\/exec \/proc\/self\/exe: operation not permitted/,
    },
    {
      flag: 'the seccomp profile (Docker default instead)',
      hostConfig: without((c) => delete c.SecurityOpt),
      stage: 'daemon',
      error: /slirp4netns failed/,
    },
    {
      flag: 'pivot_root in the seccomp profile',
      hostConfig: without((c) => (c.SecurityOpt = [profileWithout('pivot_root')])),
      stage: 'daemon',
      error: /failed to setup network.*slirp4netns/,
    },
    {
      flag: 'keyctl in the seccomp profile',
      hostConfig: without((c) => (c.SecurityOpt = [profileWithout('keyctl')])),
      stage: 'run',
      error: /unable to join session keyring: unable to create session key: operation not permitted/,
    },
    {
      flag: 'systempaths=unconfined (MaskedPaths: [], ReadonlyPaths: [])',
      hostConfig: without((c) => {
        delete c.MaskedPaths;
        delete c.ReadonlyPaths;
      }),
      stage: 'run',
      error: /error mounting "proc" to rootfs at "\/proc".*operation not permitted/,
    },
    {
      flag: '--device /dev/net/tun',
      hostConfig: without((c) => delete c.Devices),
      stage: 'daemon',
      error: /setting up tap tap0/,
    },
    {
      flag: 'a volume on the inner data root',
      hostConfig: without((c) => delete c.Mounts),
      stage: 'daemon',
      error: /error initializing graphdriver: driver not supported/,
    },
  ] as const)('without $flag: $stage breaks', async ({ hostConfig, stage, error }) => {
    session = await startSession({ prefix: PREFIX, hostConfig });
    const breakage = await observeBreakage(session);
    expect(breakage.stage).toBe(stage);
    expect(breakage.error).toMatch(error);
  });

  it("without --cgroupns private: the agent makes no learner cgroup, so learner processes share the agent's pids and CPU limits", async () => {
    // On a cgroup v1 host Docker's default is the host's namespace, where the agent must not make cgroups.
    session = await startSession({ prefix: PREFIX, hostConfig: without((c) => ((c as SessionHostConfig).CgroupnsMode = 'host')) });
    await session.waitHealthy();
    const limits = (cgroups: string): string[] => cgroups.split('\n').filter((line) => /^\d+:[^:]*\b(pids|cpu)\b[^:]*:/.test(line));
    // The agent is tini's child; `docker exec` runs beside it, not under it.
    const agent = await session.dockerExec(['sh', '-c', 'for p in $(cat /proc/1/task/1/children); do grep -q agent/main.js /proc/$p/cmdline && cat /proc/$p/cgroup; done']);
    const learner = (await session.exec(['cat', '/proc/self/cgroup'])).stdout;
    expect(limits(learner)).toHaveLength(2);
    expect(limits(learner)).toEqual(limits(agent.output));
  });

  it('without tini as PID 1 (the agent as PID 1): inner docker runs leave zombies', async () => {
    session = await startSession({
      prefix: PREFIX,
      hostConfig: (c) => c,
      entrypoint: ['/usr/local/bin/node', '/opt/runner/agent/main.js'],
    });
    await session.waitHealthy();
    const runs = await session.exec(['sh', '-c', 'for i in 1 2 3; do docker run --rm runner-busybox true || exit 1; done'], 120);
    expect(runs.exit_code, runs.stderr).toBe(0);
    const ps = await session.exec(['ps', '-e', '-o', 'stat=,comm=']);
    expect(ps.stdout.split('\n').filter((line) => line.trim().startsWith('Z')).length).toBeGreaterThan(0);
  });
});
