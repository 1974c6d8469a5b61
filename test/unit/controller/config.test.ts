import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../core/process/config-error.js';
import { parseControllerConfig } from '../../../controller/config.js';

describe('controller configuration', () => {
  it('has the seed\'s defaults and listens on loopback without a token', () => {
    const config = parseControllerConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      sessionTtlSeconds: 1800,
      cleanupIntervalSeconds: 300,
      memoryBytes: 1536 * 1024 * 1024,
      cpus: 1,
      sessionImage: 'runner-session:latest',
      network: 'runner-sessions',
      namePrefix: 'sess-',
      sessionStartTimeoutSeconds: 60,
      maxConcurrentStarts: 3,
    });
    expect(config.apiToken).toBeUndefined();
  });

  it('lets a class of 30 start at once by default, with room for a warm pool', () => {
    expect(parseControllerConfig({}).maxSessions).toBe(50);
  });

  it('runs sessions on Docker unless told Kubernetes, with the cluster settings defaulted', () => {
    expect(parseControllerConfig({}).runtime).toBe('docker');
    expect(parseControllerConfig({ SESSION_RUNTIME: 'kubernetes', HOSTNAME: 'ctl-0' })).toMatchObject({
      runtime: 'kubernetes',
      kubernetes: { namespace: 'runner-sessions', agentPort: 7070, seccompProfile: 'runner/seccomp.json', leaseName: 'runner-controller', leaseSeconds: 15, replicaId: 'ctl-0' },
    });
  });

  it('reads the browser grants settings', () => {
    const config = parseControllerConfig({
      RUNNER_PUBLIC_URL: 'https://runner.example.com/',
      RUNNER_ALLOWED_ORIGINS: 'https://a.example.com, https://b.example.com',
      PREVIEW_DOMAIN: 'preview.example.com',
      PREVIEW_HTTPS: 'false',
    });
    expect(config).toMatchObject({
      publicUrl: 'https://runner.example.com',
      allowedOrigins: ['https://a.example.com', 'https://b.example.com'],
      previewDomain: 'preview.example.com',
      previewHttps: false,
    });
    expect(parseControllerConfig({})).toMatchObject({ allowedOrigins: [], previewHttps: true, previewDomain: undefined });
  });

  it('listens on every interface once a token is set', () => {
    expect(parseControllerConfig({ RUNNER_API_TOKEN: 'x'.repeat(16) }).host).toBe('0.0.0.0');
  });

  it('gives each session a 10g filesystem and guards the host by default; 0 turns the disk limit off', () => {
    expect(parseControllerConfig({})).toMatchObject({ diskLimitBytes: 10 * 1024 ** 3, diskDir: '/var/lib/runner/disks', hostGuard: true });
    expect(parseControllerConfig({ SESSION_DISK_LIMIT: '0', SESSION_HOST_GUARD: 'false' })).toMatchObject({ diskLimitBytes: 0, hostGuard: false });
    expect(parseControllerConfig({ SESSION_DISK_LIMIT: '512m' }).diskLimitBytes).toBe(512 * 1024 ** 2);
    expect(() => parseControllerConfig({ SESSION_DISK_LIMIT: '10m' })).toThrow(ConfigError);
    expect(() => parseControllerConfig({ SESSION_DISK_DIR: 'relative/disks' })).toThrow(ConfigError);
    expect(() => parseControllerConfig({ SESSION_HOST_GUARD: 'yes' })).toThrow(ConfigError);
  });

  it('makes a new session filesystem only while the host has one full session disk free, unless told another floor', () => {
    expect(parseControllerConfig({}).diskMinFreeBytes).toBe(10 * 1024 ** 3);
    expect(parseControllerConfig({ SESSION_DISK_LIMIT: '512m' }).diskMinFreeBytes).toBe(512 * 1024 ** 2);
    expect(parseControllerConfig({ SESSION_DISK_MIN_FREE: '50g' }).diskMinFreeBytes).toBe(50 * 1024 ** 3);
    expect(parseControllerConfig({ SESSION_DISK_MIN_FREE: '0' }).diskMinFreeBytes).toBe(0);
    expect(() => parseControllerConfig({ SESSION_DISK_MIN_FREE: 'plenty' })).toThrow(/SESSION_DISK_MIN_FREE/);
  });

  it('reads memory in Docker notation', () => {
    expect(parseControllerConfig({ CONTAINER_MEMORY_LIMIT: '2g' }).memoryBytes).toBe(2 * 1024 ** 3);
    expect(parseControllerConfig({ CONTAINER_MEMORY_LIMIT: '512M' }).memoryBytes).toBe(512 * 1024 ** 2);
    expect(parseControllerConfig({ CONTAINER_CPU_LIMIT: '0.5' }).cpus).toBe(0.5);
  });

  it.each([
    [{ SESSION_TTL_SECONDS: 'soon' }, /SESSION_TTL_SECONDS/],
    [{ SESSION_TTL_SECONDS: '-5' }, /SESSION_TTL_SECONDS/],
    [{ SESSION_TTL_SECONDS: '7200', MAX_TTL_SECONDS: '3600' }, /SESSION_TTL_SECONDS: must not exceed MAX_TTL_SECONDS/],
    [{ CONTAINER_MEMORY_LIMIT: 'lots' }, /CONTAINER_MEMORY_LIMIT: expected a size/],
    [{ CONTAINER_MEMORY_LIMIT: '1m' }, /CONTAINER_MEMORY_LIMIT: must be at least 6m/],
    [{ CONTAINER_CPU_LIMIT: '0' }, /CONTAINER_CPU_LIMIT/],
    [{ CLEANUP_INTERVAL_SECONDS: '0' }, /CLEANUP_INTERVAL_SECONDS/],
    [{ MAX_SESSIONS: 'many' }, /MAX_SESSIONS/],
    [{ MAX_CONCURRENT_STARTS: '0' }, /MAX_CONCURRENT_STARTS/],
    [{ MAX_CONCURRENT_STARTS: '1000' }, /MAX_CONCURRENT_STARTS/],
    [{ PORT: '70000' }, /PORT/],
    [{ RUNNER_API_TOKEN: 'short' }, /RUNNER_API_TOKEN: must be at least 16/],
    [{ HOST: '0.0.0.0' }, /RUNNER_API_TOKEN: required when HOST is not a loopback/],
    [{ SOCKETS_DIR: 'relative/dir' }, /SOCKETS_DIR: must be an absolute path/],
    [{ SOCKETS_DIR: `/${'x'.repeat(60)}` }, /SOCKETS_DIR: must be at most/],
    [{ SESSION_NETWORK: 'bad name' }, /SESSION_NETWORK/],
    [{ SESSION_REGISTRY_MIRROR: 'not a url' }, /SESSION_REGISTRY_MIRROR/],
    [{ SESSION_RUNTIME: 'nomad' }, /SESSION_RUNTIME/],
    [{ SESSION_NAMESPACE: 'Runner_Sessions' }, /SESSION_NAMESPACE: not a valid Kubernetes namespace/],
    [{ AGENT_PORT: '0' }, /AGENT_PORT/],
    [{ SESSION_SECCOMP_PROFILE: 'runner/../../x.json' }, /SESSION_SECCOMP_PROFILE: must stay below/],
    [{ SESSION_SECCOMP_PROFILE: '/abs.json' }, /SESSION_SECCOMP_PROFILE/],
    [{ LEADER_LEASE_NAME: 'Lease!' }, /LEADER_LEASE_NAME/],
    [{ RUNNER_SIGNING_KEY: 'short' }, /RUNNER_SIGNING_KEY: must be at least 32/],
    [{ RUNNER_PUBLIC_URL: 'runner.example.com' }, /RUNNER_PUBLIC_URL/],
    [{ PREVIEW_DOMAIN: 'Preview.Example.com' }, /PREVIEW_DOMAIN: a lowercase DNS name/],
    [{ PREVIEW_DOMAIN: '*.example.com' }, /PREVIEW_DOMAIN/],
    [{ PREVIEW_HTTPS: 'yes' }, /PREVIEW_HTTPS/],
  ])('rejects %j with one line naming the variable', (env, message) => {
    expect(() => parseControllerConfig(env)).toThrow(ConfigError);
    expect(() => parseControllerConfig(env)).toThrow(message);
    try {
      parseControllerConfig(env);
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });
});
