import { AttachAddon } from '@xterm/addon-attach';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { RunnerError, type SessionClient } from '../../../client/src/index.js';
import type { ConsoleContext } from './context.js';
import { fill, h } from './dom.js';
import type { Panel } from './session-view.js';

// Close codes of the terminal WebSocket (shared/schemas/terminal.ts): the shell exited, or too many terminals.
const EXITED = 1000;
const TOO_MANY_TERMINALS = 4429;
const MAX_RETRY_MS = 10_000;
// A ticket refused for these will be refused again: the session is gone, or the token is (which signs out).
const FINAL_GRANT_ERRORS = new Set(['SESSION_NOT_FOUND', 'UNAUTHORIZED']);

const storageKey = (sessionId: string) => `runner.console.terminals.${sessionId}`;
const newTerminalId = () => `t-${crypto.getRandomValues(new Uint32Array(2)).reduce((text, n) => text + n.toString(36), '')}`;

/** One shell: an xterm attached to its WebSocket, reattached (same id, scrollback replayed) whenever it drops. */
class TerminalTab {
  readonly element = h('div', { class: 'terminal-host' });
  readonly state = h('span', { class: 'terminal-state', 'aria-live': 'polite' }, 'connecting…');
  readonly term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000, screenReaderMode: false });
  readonly fit = new FitAddon();
  #socket: WebSocket | undefined;
  #attach: AttachAddon | undefined;
  #retryMs = 500;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #resize: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #opened = false;
  readonly #observer = new ResizeObserver(() => this.refit());

  constructor(
    readonly id: string,
    private readonly session: SessionClient,
    private readonly ctx: ConsoleContext,
    private readonly onExit: (tab: TerminalTab) => void,
  ) {
    this.term.loadAddon(this.fit);
  }

  /** Opens the xterm once its host is visible (xterm measures its cells then). */
  mount(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.term.open(this.element);
    this.term.textarea?.setAttribute('aria-label', `Terminal ${this.id}`);
    this.#observer.observe(this.element);
    this.refit();
    void this.connect();
  }

  /** Each (re)connect mints a one-use ticket for this terminal id with the token, then opens the socket with it. */
  async connect(): Promise<void> {
    if (this.#closed) return;
    const { cols, rows } = this.term;
    let socket: WebSocket;
    try {
      socket = await this.session.openTerminalSocket({ id: this.id, cols, rows });
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof RunnerError && FINAL_GRANT_ERRORS.has(error.code)) {
        this.state.textContent = `no ticket (${error.code})`;
        this.ctx.showError(error);
        return;
      }
      this.#retryLater(`no ticket (${error instanceof RunnerError ? error.code : 'runner unreachable'})`);
      return;
    }
    if (this.#closed) return socket.close();
    this.#socket = socket;
    socket.addEventListener('open', () => {
      this.#retryMs = 500;
      // The agent replays the scrollback on attach: start from a clean screen so it is not shown twice.
      this.term.reset();
      this.#attach = new AttachAddon(socket);
      this.term.loadAddon(this.#attach);
      this.state.textContent = 'connected';
      this.term.focus();
    });
    socket.addEventListener('close', (event) => {
      this.#attach?.dispose();
      this.#attach = undefined;
      if (this.#closed || socket !== this.#socket) return;
      if (event.code === EXITED) {
        this.state.textContent = `shell ended (${event.reason || 'exit'})`;
        this.term.write(`\r\n[${event.reason || 'shell exited'}]\r\n`);
        this.onExit(this);
      } else if (event.code === TOO_MANY_TERMINALS) {
        this.state.textContent = `refused: ${event.reason}`;
        this.onExit(this);
      } else {
        this.#retryLater('disconnected');
      }
    });
  }

  #retryLater(why: string): void {
    this.state.textContent = `${why} — reconnecting in ${Math.round(this.#retryMs / 1000) || 1} s`;
    this.#retry = setTimeout(() => void this.connect(), this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }

  refit(): void {
    if (!this.#opened || this.element.offsetParent === null) return;
    const before = `${this.term.cols}x${this.term.rows}`;
    this.fit.fit();
    if (`${this.term.cols}x${this.term.rows}` === before || this.#socket?.readyState !== WebSocket.OPEN) return;
    clearTimeout(this.#resize);
    this.#resize = setTimeout(() => void this.session.resizeTerminal(this.id, this.term.cols, this.term.rows).catch(() => {}), 200);
  }

  /** Detaches (the shell keeps running in the session). */
  dispose(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#resize);
    this.#observer.disconnect();
    this.#socket?.close();
    this.term.dispose();
  }
}

/** Terminal tabs of a session; reloading the page reattaches to every shell still running. */
export function createTerminalPanel(ctx: ConsoleContext, session: SessionClient): Panel {
  const tabs: TerminalTab[] = [];
  let active: TerminalTab | undefined;
  const list = h('div', { role: 'tablist', 'aria-label': 'Terminals', class: 'terminal-tabs' });
  const stage = h('div', { class: 'terminal-stage' });
  const newButton = h('button', { type: 'button', onclick: () => open(newTerminalId()) }, '+ New terminal');
  const endButton = h('button', { type: 'button', class: 'danger', onclick: () => void end() }, 'End this shell');
  const element = h('div', { class: 'terminals' }, h('div', { class: 'toolbar' }, list, newButton, endButton), stage);

  const remember = () => sessionStorage.setItem(storageKey(session.id), JSON.stringify(tabs.map((tab) => tab.id)));
  const render = () => {
    fill(list, ...tabs.map((tab, index) =>
      h('button', { type: 'button', role: 'tab', 'aria-selected': String(tab === active), onclick: () => activate(tab) }, `Shell ${index + 1} `, tab.state),
    ));
    endButton.disabled = !active;
  };
  const activate = (tab: TerminalTab) => {
    active = tab;
    for (const other of tabs) other.element.hidden = other !== tab;
    render();
    tab.mount();
    tab.refit();
    tab.term.focus();
  };
  const drop = (tab: TerminalTab) => {
    tabs.splice(tabs.indexOf(tab), 1);
    remember();
    if (active === tab) active = undefined;
    render();
  };
  const open = (id: string) => {
    const tab = new TerminalTab(id, session, ctx, drop);
    tabs.push(tab);
    stage.append(tab.element);
    remember();
    activate(tab);
  };
  const end = async () => {
    const tab = active;
    if (!tab) return;
    try {
      await session.killTerminal(tab.id);
    } catch (error) {
      ctx.showError(error);
    }
  };

  let started = false;
  const start = async () => {
    started = true;
    const stored = JSON.parse(sessionStorage.getItem(storageKey(session.id)) ?? '[]') as string[];
    const live = await session.terminals().then((list) => list.terminals.map((t) => t.id), (error: unknown) => {
      ctx.showError(error);
      return [] as string[];
    });
    // Shells this tab opened first, in order, then any other still running in the session.
    const ids = [...stored.filter((id) => live.includes(id)), ...live.filter((id) => !stored.includes(id))];
    if (ids.length === 0) ids.push(newTerminalId());
    for (const id of ids) open(id);
    activate(tabs[0]!);
  };
  const onResize = () => active?.refit();
  window.addEventListener('resize', onResize);
  return {
    element,
    show() {
      if (!started) void start();
      else if (active) activate(active);
    },
    dispose() {
      window.removeEventListener('resize', onResize);
      for (const tab of tabs) tab.dispose();
    },
  };
}
