import type Docker from 'dockerode';
import seccompProfile from '../../image/seccomp.json' with { type: 'json' };

/** The session image scripts/build-images.sh builds (Dockerfile.session). */
export const SESSION_IMAGE = 'runner-session:latest';

/** A container's HostConfig with the Engine API's CgroupnsMode, which dockerode's typings lack. */
export type SessionHostConfig = Docker.HostConfig & { CgroupnsMode?: 'private' | 'host' };

/** The security part of a session container's HostConfig. */
export type SessionSecurityHostConfig = Required<
  Pick<SessionHostConfig, 'CapAdd' | 'SecurityOpt' | 'MaskedPaths' | 'ReadonlyPaths' | 'Devices' | 'Init' | 'Privileged' | 'CgroupnsMode'>
>;

/**
 * The least-privilege settings that let rootless dockerd run inside a session, and nothing more (DESIGN.md,
 * "No --privileged"). The one source of these flags: the controller and the e2e tests both use it, and
 * image/run-session.sh spells the same on the CLI. Each was shown necessary by removing it (README).
 */
export function sessionSecurityHostConfig(): SessionSecurityHostConfig {
  return {
    Privileged: false,
    // rootlesskit mounts (tmpfs copy-ups, procfs, overlay) and makes namespaces for the inner daemon.
    CapAdd: ['SYS_ADMIN'],
    // Docker's default profile plus keyctl and pivot_root, which the inner runc needs; apparmor is left default.
    SecurityOpt: [`seccomp=${JSON.stringify(seccompProfile)}`],
    // `--security-opt systempaths=unconfined` as the Engine API takes it: an unmasked /proc, so the inner
    // runc may mount a fresh procfs (the daemon rejects the CLI spelling in SecurityOpt).
    MaskedPaths: [],
    ReadonlyPaths: [],
    // slirp4netns gives the inner daemon its network through a tap device.
    Devices: [{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }],
    // The image's entrypoint is tini: with Init it would sit under docker-init instead of being PID 1.
    Init: false,
    // The session's own cgroup as the root of its cgroup mounts: the agent gives learner processes a child
    // cgroup with their own pids and CPU share (agent/limits/learner-cgroup.ts), and never sees the host's.
    CgroupnsMode: 'private',
  };
}
