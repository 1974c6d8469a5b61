import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { createDockerClient } from '../core/docker/docker-client.js';
import { createLogger } from '../core/process/logger.js';
import { closeOnSignals, readConfigOrExit } from '../core/process/start-up.js';
import { buildApp } from './app.js';
import { parseAgentConfig } from './config.js';
import { setUpLearnerCgroup } from './limits/learner-cgroup.js';
import { ExternalDaemonMonitor, type DaemonMonitor } from './supervisor/daemon-monitor.js';
import { DockerdSupervisor } from './supervisor/dockerd-supervisor.js';

async function main(): Promise<void> {
  let config = readConfigOrExit('agent', () => parseAgentConfig(process.env));
  const log = createLogger(config.logLevel);
  // Before anything is spawned: every learner process (exec, terminal, the inner dockerd) starts in it.
  const cgroup = await setUpLearnerCgroup(config.learner, log);
  config = { ...config, learner: { ...config.learner, cgroupProcs: cgroup?.procs, execCgroupParent: cgroup?.execParent } };
  const docker = createDockerClient(config.dockerHost);
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

await main();
