import type { AgentConfig } from './config.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The whole environment of a process started for the learner. It is built from scratch, never copied from
 * the agent's own, so the agent's token and settings cannot leak into learner code.
 */
export function learnerEnv(config: AgentConfig, extra: Record<string, string> = {}): Record<string, string> {
  const { learner } = config;
  const env: Record<string, string> = {
    HOME: learner.home,
    USER: learner.user,
    LOGNAME: learner.user,
    SHELL: '/bin/bash',
    PATH: DEFAULT_PATH,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
  };
  if (config.dockerHost) env.DOCKER_HOST = config.dockerHost;
  return { ...env, ...extra };
}
