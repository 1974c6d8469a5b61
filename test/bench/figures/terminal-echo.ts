import { setTimeout as sleep } from 'node:timers/promises';
import type WebSocket from 'ws';
import { controllerTerminal } from '../agent-api.js';
import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave } from '../stats.js';

const ECHO_TIMEOUT_MS = 5_000;
// Lowercase letters only: terminal escape sequences (ESC [ K, ESC [ C) never contain one.
const KEYS = 'abcdefghijklmnopqrstuvwxyz';
const KILL_LINE = '\x15';
const CLEAR_EVERY = 40;

/** A bash terminal over a WebSocket that times one keystroke until the shell echoes it back. */
class EchoTerminal {
  #waiter: ((data: string) => void) | null = null;
  #next = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => this.#waiter?.(data.toString('utf8')));
  }

  static async open(socket: WebSocket): Promise<EchoTerminal> {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`terminal refused: ${res.statusCode}`)));
    });
    const terminal = new EchoTerminal(socket);
    // The prompt (and bash's start-up output) before the first keystroke.
    await terminal.#quiet(500, 10_000);
    return terminal;
  }

  /** Sends one letter and resolves when output containing it arrives. */
  async type(): Promise<void> {
    const key = KEYS[this.#next++ % KEYS.length]!;
    const echoed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo of ${key} in ${ECHO_TIMEOUT_MS} ms`)), ECHO_TIMEOUT_MS);
      this.#waiter = (data) => {
        if (!data.includes(key)) return;
        clearTimeout(timer);
        this.#waiter = null;
        resolve();
      };
    });
    this.socket.send(key);
    await echoed;
  }

  /** Empties the input line (Ctrl-U) so it never wraps, and lets the redraw pass. */
  async clearLine(): Promise<void> {
    this.socket.send(KILL_LINE);
    await this.#quiet(30, 2_000);
  }

  close(): void {
    this.socket.close();
  }

  // Waits until no output has come for `quietMs` (at most `maxMs`).
  async #quiet(quietMs: number, maxMs: number): Promise<void> {
    let last = performance.now();
    this.#waiter = () => (last = performance.now());
    const end = performance.now() + maxMs;
    while (performance.now() - last < quietMs && performance.now() < end) await sleep(10);
    this.#waiter = null;
  }
}

/** Keystroke → echo in a bash terminal through the controller's WebSocket proxy, and direct to the agent. */
export async function measureTerminalEcho(ctx: BenchContext, session: BenchSession): Promise<Row[]> {
  const controller = await EchoTerminal.open(controllerTerminal(ctx.runner, session.viaController));
  const direct = await EchoTerminal.open(session.direct.terminal());
  try {
    const timings = await interleave(
      { controller: () => controller.type(), direct: () => direct.type() },
      {
        warmup: 10,
        rounds: ctx.profile.keystrokes,
        maxMs: 60_000,
        between: async (round) => {
          if ((round + 1) % CLEAR_EVERY === 0) await Promise.all([controller.clearLine(), direct.clearLine()]);
        },
      },
    );
    let typed = 0;
    const cpuMs = await ctx.controllerCpuPerCall(async () => {
      await controller.type();
      if (++typed % CLEAR_EVERY === 0) await controller.clearLine();
    }, ctx.profile.keystrokes);
    const s = ctx.record('terminal_echo', timings);
    return [
      compareRow('terminal keystroke echo via controller, p50', 'ms', s.controller.p50, 'direct to agent socket', s.direct.p50, {
        by: 'delta',
        note: `n=${s.controller.n} keystrokes each, interleaved; controller CPU ${cpuMs.toFixed(2)} ms per keystroke and echo`,
      }),
      compareRow('terminal keystroke echo via controller, p99', 'ms', s.controller.p99, 'direct to agent socket', s.direct.p99, {
        by: 'delta',
        target: { text: '≤ 10 ms', check: (v) => v <= 10 },
      }),
    ];
  } finally {
    controller.close();
    direct.close();
  }
}
