import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FastifyBaseLogger } from 'fastify';
import type { AgentConfig } from '../config.js';
import type { DaemonHealth } from '../../shared/schemas/health.js';
import type { DaemonMonitor } from './daemon-monitor.js';
import { DaemonClient } from './daemon-client.js';
import { runAsLearner } from '../as-learner/run-as-learner.js';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import { openFolderNoFollow } from '../files/no-follow-folder.js';
import { preloadImages } from './preload.js';
import { ReadyWaiters } from './ready-waiters.js';
import { releaseStartUpMemory } from '../start-up-memory.js';

const ROOTLESS_SCRIPT = '/usr/share/docker.io/contrib/dockerd-rootless.sh';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PING_INTERVAL_MS = 50;
// A dead daemon is noticed at once by its exit; this ping only catches one alive but hung. Each ping wakes the agent
// and dockerd (1.3-1.7 ms of the agent's CPU alone): every 2 s it was most of their idle CPU.
const WATCH_INTERVAL_MS = 10_000;
const STDERR_LINES_KEPT = 8;

export interface DockerdSupervisorOptions {
  /** Runs the daemon in the foreground; `--config-file <path>` is appended. Default: dockerd-rootless.sh. */
  command?: readonly string[];
  /** Root-owned folder for the generated daemon.json. */
  configDir?: string;
  /** The inner daemon's data root: a volume in the session image, so overlay2 works natively. */
  dataRoot?: string;
  /** How long a stopping daemon gets after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number; resetAfterMs: number };
  /** The daemon has this long to answer /_ping after a start before it is killed and restarted. */
  startTimeoutMs?: number;
  /** The container's tun device, opened for the learner (slirp4netns); null leaves devices alone (tests). */
  tunDevice?: string | null;
}

const DEFAULTS = {
  command: [ROOTLESS_SCRIPT],
  configDir: '/run/runner-dockerd',
  // dockerd gives each container its own stop timeout (10 s) on shutdown; a session that ends needs no such
  // patience, and `docker stop` of the session (10 s grace) must end well within its grace.
  stopTimeoutMs: 3_000,
  backoff: { initialMs: 250, maxMs: 15_000, resetAfterMs: 60_000 },
  startTimeoutMs: 60_000,
  tunDevice: '/dev/net/tun' as string | null,
};

/**
 * Starts the session's rootless dockerd as the learner and keeps it alive: waits for `/_ping`, loads the preload
 * folder's images, restarts a dead daemon with exponential backoff, and stops it (then its process group) on close.
 */
export class DockerdSupervisor implements DaemonMonitor {
  readonly #opts: Required<Omit<DockerdSupervisorOptions, 'dataRoot'>> & { dataRoot: string };
  readonly #client: DaemonClient;
  readonly #socketPath: string;
  #state: DaemonHealth = { ready: false, version: null, rootless: null, supervised: true, restarts: 0, last_error: null };
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #starting: Promise<void> = Promise.resolve();
  #closing = false;
  #failures = 0;
  readonly #waiters = new ReadyWaiters();
  #preloaded = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: AgentConfig,
    readonly log: FastifyBaseLogger,
    options: DockerdSupervisorOptions = {},
  ) {
    if (!config.dockerHost?.startsWith('unix://')) throw new Error('a supervised dockerd needs a unix:// DOCKER_HOST');
    this.#socketPath = new URL(config.dockerHost).pathname;
    this.#client = new DaemonClient(this.#socketPath);
    this.#opts = {
      ...DEFAULTS,
      ...options,
      dataRoot: options.dataRoot ?? join(config.learner.home, '.local/share/docker'),
    };
    this.log = log.child({ component: 'dockerd' });
    this.#start();
  }

  health(): DaemonHealth {
    return this.#state;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    if (this.#state.ready) return;
    await this.#waiters.wait(timeoutMs, () => `docker daemon not ready after ${timeoutMs} ms: ${this.#state.last_error ?? 'starting'}`);
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#timer);
    // A start under way notices #closing at its next step; wait, so it cannot spawn a daemon after this.
    await this.#starting;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.log.info('stopping dockerd');
    // rootlesskit forwards the signal to dockerd, which stops its containers and containerd in order; the
    // whole group at once would take containerd away from under it.
    child.kill('SIGTERM');
    const killer = setTimeout(() => this.#signalGroup(child, 'SIGKILL'), this.#opts.stopTimeoutMs);
    await this.#exited;
    clearTimeout(killer);
    // Whatever the daemon left behind in its group (shims, slirp4netns) goes with it.
    this.#signalGroup(child, 'SIGKILL');
    this.log.info('dockerd stopped');
  }

  #start(): void {
    this.#starting = this.#attemptStart();
  }

  async #attemptStart(): Promise<void> {
    if (this.#closing) return;
    let child: ChildProcess | undefined;
    try {
      const configFile = await this.#prepare();
      if (this.#closing) return;
      child = this.#spawn(configFile);
      await this.#waitForPing(child);
      const daemon = await this.#client.describe();
      this.#state = { ...this.#state, version: daemon.version, rootless: daemon.rootless, last_error: null };
      this.log.info({ version: daemon.version, rootless: daemon.rootless }, 'dockerd ready');
      await this.#preload();
      // It may have died while loading; its exit listener then owns what happens next.
      if (this.#closing || this.#child !== child) return;
      this.#markReady(true);
      this.#timer = setTimeout(() => void this.#watch(), WATCH_INTERVAL_MS);
      // What only the start needed goes, once the ready answer is out.
      setImmediate(releaseStartUpMemory);
    } catch (error) {
      if (this.#closing) return;
      const running = child !== undefined && child.exitCode === null && child.signalCode === null;
      // A daemon that exited was already recorded (with its output) and rescheduled by its exit listener.
      if (child && !running) return;
      this.#state = { ...this.#state, ready: false, last_error: (error as Error).message };
      this.log.error({ err: error }, 'dockerd failed to start');
      // One that never answered is killed, and its exit schedules the restart.
      if (running) this.#signalGroup(child!, 'SIGKILL');
      else this.#scheduleRestart((error as Error).message);
    }
  }

  /**
   * Makes the learner's runtime and data folders and writes daemon.json; returns its path. The learner can write in
   * both and plant links there at will, so root only ever acts on them through no-follow descriptors, and what is
   * inside the runtime folder is removed by the learner's own rights.
   */
  async #prepare(): Promise<string> {
    const { uid, gid } = this.config.learner;
    const runtimeDir = this.#runtimeDir();
    const runtime = await openFolderNoFollow(runtimeDir, { createMode: 0o700 });
    try {
      await runtime.chown(uid, gid);
      await runtime.chmod(0o700);
    } finally {
      await runtime.close();
    }
    // The container's /run outlives a restart of the session: a dead daemon's pid file and sockets would make the
    // next one refuse to start or wait for a containerd that is gone. Each daemon starts with an empty folder.
    await runAsLearner(this.config.learner, ['find', runtimeDir, '-mindepth', '1', '-delete']).catch((error: unknown) => {
      // Only the learner can have made something it cannot remove; the daemon says so if it minds.
      this.log.warn({ err: error }, 'cannot empty the runtime folder');
    });
    // A fresh volume is root-owned; the rootless daemon (the learner) must own its data root.
    const dataRoot = await openFolderNoFollow(this.#opts.dataRoot, { createMode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ELOOP' || error.code === 'ENOTDIR') throw new Error(`the data root ${this.#opts.dataRoot} must be a folder, not a symbolic link or under one`);
      throw error;
    });
    try {
      await dataRoot.chown(uid, gid);
    } finally {
      await dataRoot.close();
    }
    // Docker copies the host's mode, often 0600: slirp4netns runs as the learner. The node is the container's own.
    if (this.#opts.tunDevice) await chmod(this.#opts.tunDevice, 0o666).catch(() => {});
    await mkdir(this.#opts.configDir, { recursive: true, mode: 0o755 });
    const configFile = join(this.#opts.configDir, 'daemon.json');
    await writeFile(configFile, JSON.stringify(this.#daemonJson(), null, 2) + '\n', { mode: 0o644 });
    return configFile;
  }

  #daemonJson(): Record<string, unknown> {
    return {
      'data-root': this.#opts.dataRoot,
      // Fail loudly instead of falling back to vfs (slow, disk-hungry) when the data root is not a volume.
      'storage-driver': 'overlay2',
      'log-driver': 'json-file',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
      ...(this.config.registryMirror ? { 'registry-mirrors': [this.config.registryMirror] } : {}),
    };
  }

  // dockerd-rootless.sh puts its socket in XDG_RUNTIME_DIR: /run/user/<uid> for the default DOCKER_HOST.
  #runtimeDir(): string {
    return dirname(this.#socketPath);
  }

  #spawn(configFile: string): ChildProcess {
    const { uid, gid, home, user } = this.config.learner;
    const command = this.#opts.command[0];
    this.log.info({ command, restarts: this.#state.restarts }, 'starting dockerd');
    // Inner containers are learner code too: the daemon and all it starts live in a learner cgroup of their own.
    // No no-new-privileges: rootlesskit runs the set-uid newuidmap.
    const { file, args, env } = learnerSpawn(
      { uid, gid, join: this.config.learner.cgroups?.procs.dockerd, noNewPrivs: false },
      [...this.#opts.command, '--config-file', configFile],
      // A clean environment: nothing of the agent's (its token above all) reaches the learner's daemon.
      { HOME: home, USER: user, LOGNAME: user, PATH, XDG_RUNTIME_DIR: this.#runtimeDir(), LANG: 'C.UTF-8' },
    );
    const child = spawn(file, args, {
      cwd: home,
      env,
      // Its own process group, so stopping it also stops rootlesskit's and dockerd's children.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    const startedAt = Date.now();
    const lastLines: string[] = [];
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.log.debug({ line }, 'dockerd output');
        // Its traced commands (set -x) and info chatter never explain a failure; errors and warnings do.
        if (line.startsWith('+ ') || /level=(info|debug)/.test(line)) return;
        lastLines.push(line);
        if (lastLines.length > STDERR_LINES_KEPT) lastLines.shift();
      });
    }
    this.#exited = new Promise((resolve) => {
      child.once('error', (error) => {
        lastLines.push(error.message);
        child.emit('exit', null, null);
      });
      child.once('exit', (code, signal) => {
        resolve();
        if (this.#child !== child) return;
        this.#child = undefined;
        if (this.#closing) return;
        if (Date.now() - startedAt > this.#opts.backoff.resetAfterMs) this.#failures = 0;
        this.log.warn({ code, signal, lastLines }, 'dockerd exited');
        this.#scheduleRestart(`dockerd exited (${signal ?? `code ${code}`}): ${lastLines.join(' | ')}`);
      });
    });
    return child;
  }

  #scheduleRestart(reason: string): void {
    if (this.#closing) return;
    const delayMs = Math.min(this.#opts.backoff.initialMs * 2 ** this.#failures, this.#opts.backoff.maxMs);
    this.#failures += 1;
    this.#state = { ...this.#state, ready: false, restarts: this.#state.restarts + 1, last_error: reason };
    this.log.warn({ delayMs, restarts: this.#state.restarts }, 'restarting dockerd after backoff');
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#start(), delayMs);
  }

  async #waitForPing(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.#opts.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.#closing || this.#child !== child) throw new Error('dockerd exited before answering /_ping');
      if (await this.#client.ping()) return;
      await new Promise((resolve) => setTimeout(resolve, PING_INTERVAL_MS));
    }
    throw new Error(`dockerd did not answer /_ping within ${this.#opts.startTimeoutMs} ms`);
  }

  async #preload(): Promise<void> {
    try {
      const loaded = await preloadImages(this.#client, this.config.preloadDir, this.#preloaded);
      if (loaded.length > 0) this.log.info({ loaded }, 'preloaded images');
    } catch (error) {
      // The daemon is usable without its preloads; say why they are missing.
      this.#state = { ...this.#state, last_error: `preload failed: ${(error as Error).message}` };
      this.log.error({ err: error }, 'preloading images failed');
    }
  }

  /** Follows a running daemon: ready while it answers /_ping. Its death is handled by the exit listener. */
  async #watch(): Promise<void> {
    if (this.#closing || !this.#child) return;
    const answering = await this.#client.ping();
    if (answering !== this.#state.ready && this.#child) {
      this.log.warn({ answering }, 'dockerd readiness changed');
      this.#markReady(answering);
    }
    if (!this.#closing && this.#child) this.#timer = setTimeout(() => void this.#watch(), WATCH_INTERVAL_MS);
  }

  #markReady(ready: boolean): void {
    this.#state = { ...this.#state, ready };
    if (!ready) return;
    this.#waiters.wakeAll();
  }

  #signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is already gone.
    }
  }
}
