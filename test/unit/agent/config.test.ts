import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../../agent/config.js';
import { ConfigError } from '../../../core/process/config-error.js';
import { TEST_TOKEN } from '../../helpers/test-agent.js';

describe('configuration', () => {
  it.each([
    [{}, /AGENT_SOCKET/],
    [{ AGENT_LISTEN: '127.0.0.1:7070' }, /AGENT_TOKEN: required/],
    [{ AGENT_LISTEN: 'nonsense', AGENT_TOKEN: TEST_TOKEN }, /AGENT_LISTEN/],
    [{ AGENT_SOCKET: '/tmp/s', AGENT_TOKEN: 'short' }, /AGENT_TOKEN/],
    [{ AGENT_SOCKET: '/tmp/s', AGENT_EXEC_TIMEOUT_SECONDS: '-1' }, /AGENT_EXEC_TIMEOUT_SECONDS/],
    [{ AGENT_SOCKET: '/tmp/s', AGENT_SUPERVISE_DOCKERD: 'maybe' }, /AGENT_SUPERVISE_DOCKERD/],
  ])('rejects %j naming the variable', (env, message) => {
    expect(() => parseAgentConfig(env)).toThrow(ConfigError);
    expect(() => parseAgentConfig(env)).toThrow(message);
  });

  it('points a supervised agent at the rootless daemon of the learner', () => {
    const config = parseAgentConfig({ AGENT_SOCKET: '/tmp/s', AGENT_SUPERVISE_DOCKERD: 'true', AGENT_LEARNER_UID: '1000' });
    expect(config.dockerHost).toBe('unix:///run/user/1000/docker.sock');
  });
});
