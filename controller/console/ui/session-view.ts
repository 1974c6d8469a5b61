import type { SessionInfo } from '../../../client/src/index.js';
import { createContainersPanel } from './containers-panel.js';
import type { ConsoleContext, View } from './context.js';
import { fill, formatTimeLeft, h } from './dom.js';
import { createFilesPanel } from './files-panel.js';
import { createPreviewPanel } from './preview-panel.js';
import { createTerminalPanel } from './terminal-panel.js';

/** A panel of the session page; `show` is called each time its tab is selected. */
export interface Panel extends View {
  show?(): void;
  hide?(): void;
}

const POLL_MS = 5000;

/** One session: its status and countdown, and tabs for terminals, files, containers and a preview. */
export function showSession(ctx: ConsoleContext, id: string): View {
  const { client } = ctx;
  const session = client.session(id);
  const title = h('h2', { id: 'session-title', tabindex: '-1' }, `Session ${id}`);
  const facts = h('p', { class: 'facts', 'aria-live': 'off' });
  const header = h(
    'header',
    { class: 'session-header' },
    h('a', { href: '#/', class: 'back' }, '← All sessions'),
    title,
    facts,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => void extend() }, '+30 min'),
      h('button', { type: 'button', class: 'danger', onclick: () => void remove() }, 'Delete session'),
    ),
  );

  const panels: Record<string, () => Panel> = {
    Terminal: () => createTerminalPanel(ctx, session),
    Files: () => createFilesPanel(ctx, session),
    Containers: () => createContainersPanel(ctx, session),
    Preview: () => createPreviewPanel(ctx, session),
  };
  const names = Object.keys(panels);
  const made = new Map<string, Panel>();
  const tabs = names.map((name, index) =>
    h('button', { type: 'button', role: 'tab', id: `tab-${name}`, 'aria-controls': `panel-${name}`, 'aria-selected': 'false', tabindex: index === 0 ? '0' : '-1', onclick: () => select(name) }, name),
  );
  const tablist = h('div', { role: 'tablist', 'aria-label': 'Session tools' }, ...tabs);
  const holders = names.map((name) => h('div', { role: 'tabpanel', id: `panel-${name}`, 'aria-labelledby': `tab-${name}`, class: 'panel', hidden: true }));
  tablist.addEventListener('keydown', (event) => {
    const index = tabs.indexOf(document.activeElement as HTMLButtonElement);
    if (index === -1) return;
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step === 0) return;
    const next = names[(index + step + names.length) % names.length]!;
    select(next);
    tabs[names.indexOf(next)]!.focus();
  });

  let selected: string | undefined;
  function select(name: string): void {
    if (selected) made.get(selected)?.hide?.();
    selected = name;
    names.forEach((other, index) => {
      const active = other === name;
      tabs[index]!.setAttribute('aria-selected', String(active));
      tabs[index]!.tabIndex = active ? 0 : -1;
      holders[index]!.hidden = !active;
    });
    let panel = made.get(name);
    if (!panel) {
      panel = panels[name]!();
      made.set(name, panel);
      holders[names.indexOf(name)]!.append(panel.element);
    }
    panel.show?.();
  }

  let info: SessionInfo | undefined;
  const renderFacts = () => {
    if (!info) return;
    fill(facts, h('span', { class: `status status-${info.status}` }, info.status), ` · ${formatTimeLeft(info.expires_at)} left · container ${info.container_name}`);
  };
  const starting = h('p', { class: 'muted', role: 'status' }, 'Loading the session…');
  const refresh = async () => {
    try {
      info = await client.getSession(id);
      renderFacts();
      // The tools need a running agent: a session still being created gets them once it is up.
      if (selected === undefined && info.status === 'running') {
        starting.remove();
        select(names[0]!);
      } else if (selected === undefined) starting.textContent = `The session is ${info.status}; its tools open once it runs.`;
    } catch (error) {
      ctx.showError(error);
    }
  };
  const extend = async () => {
    if (!info) return;
    const left = Math.max(0, Math.floor((Date.parse(info.expires_at) - Date.now()) / 1000));
    try {
      info = await client.extendSession(id, left + 30 * 60);
      renderFacts();
      ctx.announce(`${id} extended`);
    } catch (error) {
      ctx.showError(error);
    }
  };
  const remove = async () => {
    if (!confirm(`Delete session ${id} and everything in it?`)) return;
    // Its terminals and live streams end first, so that nothing reconnects to a session being removed.
    stopPanels();
    try {
      await client.deleteSession(id);
      ctx.announce(`${id} deleted`);
      location.hash = '#/';
    } catch (error) {
      ctx.showError(error);
    }
  };

  const element = h('section', { class: 'session', 'aria-labelledby': 'session-title' }, header, tablist, starting, ...holders);
  const poll = setInterval(() => void refresh(), POLL_MS);
  const tick = setInterval(renderFacts, 1000);
  void refresh();
  function stopPanels(): void {
    for (const panel of made.values()) panel.dispose();
    made.clear();
  }
  return {
    element,
    dispose() {
      clearInterval(poll);
      clearInterval(tick);
      stopPanels();
    },
  };
}
