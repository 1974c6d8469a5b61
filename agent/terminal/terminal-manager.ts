import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../../shared/errors.js';
import type { TerminalInfo } from '../../shared/schemas/terminal.js';
import type { AgentConfig } from '../config.js';
import { learnerEnv } from '../learner-env.js';
import { learnerSpawn } from '../limits/learner-cgroup.js';
import { PtySession, type ShellCommand } from './pty-session.js';

const DEFAULT_COLS = 80;
const DEFAULT_ROWS = 24;
// bash in the pty, with IUTF8 set first: node-pty only sets it for string output, and without it the kernel's
// line editing (`read`, `cat`) erases half a character on backspace. `exec` keeps the pid and SHLVL.
const BASH = ['/bin/bash', '-c', 'stty iutf8 2>/dev/null; exec /bin/bash'] as const;
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

export interface OpenTerminal {
  id?: string;
  cols?: number;
  rows?: number;
}

/** Owns every terminal (pty) of the agent: at most `config.maxTerminals`, each ended when idle or on close. */
export class TerminalManager {
  #terminals = new Map<string, PtySession>();
  #shell: Shell | AppError;

  constructor(
    readonly config: AgentConfig,
    readonly log: FastifyBaseLogger,
  ) {
    this.#shell = learnerShell(config);
  }

  count(): number {
    return this.#terminals.size;
  }

  list(): TerminalInfo[] {
    return [...this.#terminals.values()].map((terminal) => terminal.info());
  }

  get(id: string): PtySession {
    const terminal = this.#terminals.get(id);
    if (!terminal) throw new AppError('TERMINAL_NOT_FOUND', `no terminal ${id}`, { id });
    return terminal;
  }

  /** The terminal `id` when it runs (resized when a size is given), else a new shell under `id` or a fresh id. */
  open({ id = randomUUID(), cols, rows }: OpenTerminal): PtySession {
    const existing = this.#terminals.get(id);
    if (existing) {
      if (cols !== undefined || rows !== undefined) {
        const { cols: currentCols, rows: currentRows } = existing.info();
        existing.resize(cols ?? currentCols, rows ?? currentRows);
      }
      return existing;
    }
    if (this.#terminals.size >= this.config.maxTerminals) {
      throw new AppError('TOO_MANY_TERMINALS', `at most ${this.config.maxTerminals} terminals`, {
        max_terminals: this.config.maxTerminals,
      });
    }
    if (this.#shell instanceof AppError) throw this.#shell;
    const terminal = new PtySession({
      id,
      cols: cols ?? DEFAULT_COLS,
      rows: rows ?? DEFAULT_ROWS,
      command: this.#shell.command,
      cwd: this.config.workspace,
      env: this.#shell.env,
      scrollbackBytes: this.config.terminalScrollbackBytes,
      idleSeconds: this.config.terminalIdleSeconds,
      log: this.log,
      onExit: (ended) => {
        if (this.#terminals.get(ended.id) === ended) this.#terminals.delete(ended.id);
      },
    });
    this.#terminals.set(id, terminal);
    this.log.info({ terminal: id, pid: terminal.pid }, 'terminal started');
    return terminal;
  }

  async kill(id: string): Promise<void> {
    await this.get(id).kill();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#terminals.values()].map((terminal) => terminal.kill()));
  }
}

interface Shell {
  command: ShellCommand;
  env: Record<string, string>;
}

/**
 * How to start bash as the learner, in the learner cgroup when there is one, through setpriv with
 * no-new-privileges (no set-uid binary or file capability raises what the shell may do). A root agent also drops
 * to the learner in setpriv, because node-pty's own uid/gid switch keeps the agent's supplementary groups (group 0
 * in a container) in the learner's shell.
 */
function learnerShell(config: AgentConfig): Shell | AppError {
  const { file, args, env } = learnerSpawn(config.learner.cgroupProcs, BASH, learnerEnv(config, { TERM: 'xterm-256color' }));
  const setpriv = SETPRIV_PATHS.find((path) => existsSync(path));
  if (!setpriv) return new AppError('INTERNAL', 'terminals need setpriv (util-linux) to drop privileges');
  const { uid, gid } = config.learner;
  const drop = process.getuid?.() === 0 ? ['--reuid', String(uid), '--regid', String(gid), '--clear-groups'] : [];
  return { command: { file: setpriv, args: [...drop, '--no-new-privs', '--', file, ...args] }, env };
}
