import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import { spawn, type IPty } from 'node-pty';
import { WebSocket, type RawData } from 'ws';
import { AppError } from '../../shared/errors.js';
import { TerminalCloseCode, type TerminalInfo } from '../../shared/schemas/terminal.js';
import { PtyInput } from './pty-input.js';
import { Scrollback } from './scrollback.js';

// Output queued for one slow client beyond this pauses the shell's output (the kernel then blocks the writer).
const HIGH_WATER_BYTES = 1024 * 1024;
const LOW_WATER_BYTES = 256 * 1024;
// Input waiting for the shell beyond this stops reading the clients' sockets (TCP then holds the sender back), so a
// terminal buffers at most this plus the frames already read (each at most the agent's 1 MiB WebSocket payload).
const INPUT_HIGH_WATER_BYTES = 1024 * 1024;
const INPUT_LOW_WATER_BYTES = 256 * 1024;
// How long a hung-up shell gets to exit before everything in its session is killed.
const KILL_GRACE_MS = 1000;
// Input that arrives before the shell first writes is held this long at most: until then the tty is not yet the
// shell's (a Ctrl-C kills it before it handles SIGINT, keys are echoed by the kernel and then again by readline).
const INPUT_HOLD_MS = 2000;

/** What to run in the pty and as whom. */
export interface ShellCommand {
  file: string;
  args: string[];
  uid?: number;
  gid?: number;
}

export interface PtySessionOptions {
  id: string;
  cols: number;
  rows: number;
  command: ShellCommand;
  cwd: string;
  env: Record<string, string>;
  scrollbackBytes: number;
  idleSeconds: number;
  log: FastifyBaseLogger;
  onExit: (session: PtySession) => void;
}

/**
 * One shell in a pty and the WebSocket clients attached to it. Bytes go both ways unchanged: client frames are
 * written to the pty as they are, pty output goes to every client as binary frames and into a bounded scrollback.
 */
export class PtySession {
  readonly id: string;
  readonly createdAt = new Date();
  #options: PtySessionOptions;
  #pty: IPty;
  #scrollback: Scrollback;
  #input: PtyInput;
  #clients = new Set<WebSocket>();
  #lastActivity = new Date();
  #idleTimer: NodeJS.Timeout | undefined;
  #holdingInput = true;
  #inputTimer: NodeJS.Timeout;
  #paused = false;
  #ended = false;
  #exited: Promise<void>;

  constructor(options: PtySessionOptions) {
    this.id = options.id;
    this.#options = options;
    this.#scrollback = new Scrollback(options.scrollbackBytes);
    const { command } = options;
    this.#pty = spawn(command.file, command.args, {
      name: options.env.TERM ?? 'xterm-256color',
      cols: options.cols,
      rows: options.rows,
      cwd: options.cwd,
      env: options.env,
      uid: command.uid,
      gid: command.gid,
      // Raw Buffers, never strings: a UTF-8 character split across reads is passed on intact.
      encoding: null,
    });
    // node-pty's unix terminal has its master descriptor as `fd`, outside its typings.
    const fd = (this.#pty as IPty & { fd?: number }).fd;
    if (fd === undefined) throw new AppError('INTERNAL', 'the pty has no descriptor to write input to');
    this.#input = new PtyInput(fd, {
      highWaterBytes: INPUT_HIGH_WATER_BYTES,
      lowWaterBytes: INPUT_LOW_WATER_BYTES,
      onFull: () => {
        for (const client of this.#clients) client.pause();
      },
      onDrained: () => {
        for (const client of this.#clients) client.resume();
      },
    });
    this.#input.hold();
    // With `encoding: null` node-pty emits Buffers although its typings say string.
    this.#pty.onData((data: string | Buffer) => this.#output(typeof data === 'string' ? Buffer.from(data) : data));
    this.#exited = new Promise((resolve) => {
      this.#pty.onExit(({ exitCode, signal }) => {
        this.#end(signal ? 128 + signal : exitCode);
        resolve();
      });
    });
    this.#startIdleTimer();
    this.#inputTimer = setTimeout(() => this.#releaseInput(), INPUT_HOLD_MS);
    this.#inputTimer.unref();
  }

  get pid(): number {
    return this.#pty.pid;
  }

  info(): TerminalInfo {
    return {
      id: this.id,
      pid: this.#pty.pid,
      cols: this.#pty.cols,
      rows: this.#pty.rows,
      attached: this.#clients.size,
      created_at: this.createdAt.toISOString(),
      last_activity: this.#lastActivity.toISOString(),
    };
  }

  /** Sends the scrollback, then live output; every frame from the client is input for the shell. */
  attach(socket: WebSocket): void {
    clearTimeout(this.#idleTimer);
    const replay = this.#scrollback.snapshot();
    if (replay.length > 0) socket.send(replay, { binary: true });
    this.#clients.add(socket);
    if (this.#input.full) socket.pause();
    socket.on('message', (data) => {
      if (this.#ended) return;
      this.#lastActivity = new Date();
      this.#input.write(toBuffer(data));
    });
    socket.once('close', () => this.#detach(socket));
  }

  resize(cols: number, rows: number): void {
    try {
      this.#pty.resize(cols, rows);
    } catch {
      // The shell is gone and its pty closed; the exit event is on its way.
      throw new AppError('TERMINAL_NOT_FOUND', `terminal ${this.id} has ended`, { id: this.id });
    }
  }

  /** Hangs up the shell and everything started in its session; kills what is still there after a grace period. */
  async kill(): Promise<void> {
    // Once it exited its pid may belong to someone else.
    if (this.#ended) return;
    await signalSession(this.#pty.pid, 'SIGHUP');
    const exited = await Promise.race([this.#exited.then(() => true), sleep(KILL_GRACE_MS, false, { ref: false })]);
    if (!exited && !this.#ended) {
      await signalSession(this.#pty.pid, 'SIGKILL');
      await this.#exited;
    }
  }

  #output(chunk: Buffer): void {
    this.#releaseInput();
    this.#lastActivity = new Date();
    this.#scrollback.append(chunk);
    for (const client of this.#clients) {
      if (client.readyState !== WebSocket.OPEN) continue;
      client.send(chunk, { binary: true }, () => this.#resumeIfDrained());
      if (!this.#paused && client.bufferedAmount > HIGH_WATER_BYTES) {
        this.#paused = true;
        this.#pty.pause();
      }
    }
  }

  #resumeIfDrained(): void {
    if (!this.#paused) return;
    for (const client of this.#clients) if (client.bufferedAmount > LOW_WATER_BYTES) return;
    this.#paused = false;
    this.#pty.resume();
  }

  #detach(socket: WebSocket): void {
    this.#clients.delete(socket);
    this.#resumeIfDrained();
    if (this.#clients.size === 0) this.#startIdleTimer();
  }

  #startIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#options.log.info({ terminal: this.id }, 'terminal idle, ending it');
      void this.kill();
    }, this.#options.idleSeconds * 1000);
    this.#idleTimer.unref();
  }

  /** Writes the input held while the shell started, once it has written (or the hold expired). */
  #releaseInput(): void {
    if (!this.#holdingInput) return;
    this.#holdingInput = false;
    clearTimeout(this.#inputTimer);
    if (!this.#ended) this.#input.release();
  }

  #end(code: number): void {
    this.#ended = true;
    this.#input.close();
    this.#holdingInput = false;
    clearTimeout(this.#inputTimer);
    clearTimeout(this.#idleTimer);
    this.#options.log.info({ terminal: this.id, code }, 'terminal exited');
    for (const client of this.#clients) client.close(TerminalCloseCode.exited, `exit ${code}`);
    this.#clients.clear();
    this.#options.onExit(this);
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * Sends `signal` to every process in the session `sid` (the shell is its leader), background jobs in their own
 * process groups included; those are what a hangup of the terminal should end.
 */
async function signalSession(sid: number, signal: NodeJS.Signals): Promise<void> {
  const entries = await readdir('/proc').catch(() => []);
  const members = await Promise.all(
    entries.filter((entry) => /^\d+$/.test(entry)).map(async (entry) => {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // Fields after the command name, which may itself contain spaces and parentheses: state ppid pgrp session.
      const session = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
      return session === sid ? Number(entry) : undefined;
    }),
  );
  for (const pid of new Set([sid, ...members])) {
    if (pid === undefined) continue;
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}
