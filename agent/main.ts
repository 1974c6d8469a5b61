import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import type { Logger } from 'pino';
import { createDockerClient } from '../core/docker/docker-client.js';
import { createLogger } from '../core/process/logger.js';
import { closeOnSignals, readConfigOrExit } from '../core/process/start-up.js';
import { buildApp } from './app.js';
import { parseAgentConfig, settleWorkspace, type AgentConfig } from './config.js';
import { setUpLearnerCgroup } from './limits/learner-cgroup.js';
import { ExternalDaemonMonitor, type DaemonMonitor } from './supervisor/daemon-monitor.js';
import { DockerdSupervisor } from './supervisor/dockerd-supervisor.js';

async function main(): Promise<void> {
  let config = readConfigOrExit('agent', () => settleWorkspace(parseAgentConfig(process.env), process.env));
  const log = createLogger(config.logLevel);
  // Before anything is spawned: every learner process (exec, terminal, the inner dockerd) starts in it.
  const cgroup = await setUpLearnerCgroup(config.learner, log);
  config = { ...config, learner: { ...config.learner, cgroupProcs: cgroup?.procs, execCgroupParent: cgroup?.execParent } };
  const docker = createDockerClient(config.dockerHost);
  logWhoDoesWhat(config, log);
  const daemon: DaemonMonitor = config.superviseDockerd
    ? new DockerdSupervisor(config, log)
    : new ExternalDaemonMonitor(docker);
  const app = await buildApp({ config, docker, daemon, logger: log });

  if (config.socket) {
    await rm(config.socket, { force: true });
    await app.listen({ path: config.socket });
    // Only the agent's own user (root in the session image) and the host may use the socket.
    await chmod(config.socket, 0o600);
    log.info({ socket: config.socket }, 'agent listening on unix socket');
  }
  let extraListener: Server | undefined;
  if (config.listen && !config.socket) {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } else if (config.listen) {
    // Fastify has one server; a second listener hands its connections to it, so both share every terminal.
    const { host, port } = config.listen;
    extraListener = createServer((socket) => app.server.emit('connection', socket));
    await new Promise<void>((resolve) => extraListener!.listen(port, host, resolve));
  }
  if (config.listen) log.info(config.listen, 'agent listening on TCP (bearer token required)');

  closeOnSignals('agent', log, async () => {
    extraListener?.close();
    await app.close();
    await daemon.close();
  });
}

/** Says at start which engine build/run/stop drive and as whom, since outside a session that is the host's own. */
function logWhoDoesWhat(config: AgentConfig, log: Logger): void {
  const engine = config.dockerHost ?? 'unix:///var/run/docker.sock';
  const agentUid = process.getuid?.();
  const { uid, gid } = config.learner;
  const driven = config.superviseDockerd ? `the learner's rootless Docker engine at ${engine}` : `the Docker engine at ${engine} as uid ${agentUid}`;
  log.info({ docker_host: engine, agent_uid: agentUid, learner_uid: uid, learner_gid: gid, workspace: config.workspace },
    `build/run/stop drive ${driven}; exec and terminal run as uid ${uid}`);
  if (!config.superviseDockerd && !config.dockerHost && agentUid === 0) {
    log.warn(`the Docker engine at ${engine} is this machine's own: containers started through the agent run there, as root`);
  }
}

await main();
