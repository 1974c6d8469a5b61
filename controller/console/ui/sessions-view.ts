import type { SessionInfo } from '../../../client/src/index.js';
import type { ConsoleContext, View } from './context.js';
import { field, fill, formatTimeLeft, h } from './dom.js';

const POLL_MS = 5000;
const EXTEND_SECONDS = 30 * 60;

/** Usage figures, shown when the runner reports them on a session. */
interface Usage {
  memory_bytes?: number;
  cpu_percent?: number;
}
const usageOf = (session: SessionInfo): Usage | undefined => (session as SessionInfo & { usage?: Usage }).usage;

/** The sessions table: live countdowns, create, extend, delete; refreshed by polling. */
export function showSessions(ctx: ConsoleContext): View {
  const { client } = ctx;
  const idInput = h('input', { name: 'session_id', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,47}', placeholder: 'lab1' });
  const ttlInput = h('input', { name: 'ttl_minutes', type: 'number', min: '1', value: '30' });
  const createButton = h('button', { type: 'submit' }, 'Create session');
  const form = h('form', { class: 'toolbar', 'aria-label': 'Create a session' }, field('Session id', idInput), field('Minutes', ttlInput), createButton);
  const body = h('tbody');
  const usageHeaders = [h('th', { scope: 'col' }, 'Memory'), h('th', { scope: 'col' }, 'CPU')];
  const table = h(
    'table',
    { class: 'sessions' },
    h('caption', { class: 'visually-hidden' }, 'Sessions'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Session'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Time left'), ...usageHeaders, h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Actions'))),
    body,
  );
  const empty = h('p', { class: 'muted' }, 'No sessions yet.');
  const element = h('section', { 'aria-labelledby': 'sessions-title' }, h('h2', { id: 'sessions-title', tabindex: '-1' }, 'Sessions'), form, h('div', { class: 'table-wrap' }, table), empty);

  let sessions: SessionInfo[] = [];
  const act = async (work: () => Promise<unknown>, done: string) => {
    try {
      await work();
      ctx.announce(done);
      await refresh();
    } catch (error) {
      ctx.showError(error);
    }
  };

  const row = (session: SessionInfo): HTMLTableRowElement => {
    const id = session.session_id;
    const usage = usageOf(session);
    const timeLeft = h('td', { class: 'time-left', 'data-expires': session.expires_at }, formatTimeLeft(session.expires_at));
    const cells = [
      h('td', {}, h('a', { href: `#/sessions/${encodeURIComponent(id)}` }, id)),
      h('td', {}, h('span', { class: `status status-${session.status}` }, session.status)),
      timeLeft,
      ...(showUsage ? [h('td', {}, usage?.memory_bytes === undefined ? '—' : `${(usage.memory_bytes / 2 ** 20).toFixed(0)} MiB`), h('td', {}, usage?.cpu_percent === undefined ? '—' : `${usage.cpu_percent.toFixed(0)} %`)] : []),
      h('td', {}, new Date(session.created_at).toLocaleString()),
      h(
        'td',
        {},
        h('div', { class: 'actions' }, h('button', { type: 'button', 'aria-label': `Extend ${id} by 30 minutes`, onclick: () => {
          const left = Math.max(0, Math.floor((Date.parse(session.expires_at) - Date.now()) / 1000));
          void act(() => client.extendSession(id, left + EXTEND_SECONDS), `${id} extended`);
        } }, '+30 min'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${id}`, onclick: () => {
          if (confirm(`Delete session ${id} and everything in it?`)) void act(() => client.deleteSession(id), `${id} deleted`);
        } }, 'Delete')),
      ),
    ];
    return h('tr', { 'data-session': id }, ...cells);
  };

  let showUsage = false;
  const render = () => {
    showUsage = sessions.some((session) => usageOf(session) !== undefined);
    for (const header of usageHeaders) header.hidden = !showUsage;
    fill(body, ...sessions.map(row));
    empty.hidden = sessions.length > 0;
    table.hidden = sessions.length === 0;
  };

  const refresh = async () => {
    sessions = (await client.listSessions()).sort((a, b) => a.session_id.localeCompare(b.session_id));
    render();
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    createButton.disabled = true;
    createButton.textContent = 'Creating…';
    const minutes = Number(ttlInput.value);
    const id = idInput.value.trim();
    await act(async () => {
      await client.createSession({ session_id: id, ...(minutes > 0 ? { ttl_seconds: Math.round(minutes * 60) } : {}) });
      idInput.value = '';
    }, `${id} created`);
    createButton.disabled = false;
    createButton.textContent = 'Create session';
  });

  const poll = setInterval(() => void refresh().catch((error: unknown) => ctx.showError(error)), POLL_MS);
  const tick = setInterval(() => {
    for (const cell of body.querySelectorAll<HTMLElement>('.time-left')) cell.textContent = formatTimeLeft(cell.dataset.expires!);
  }, 1000);
  void refresh().catch((error: unknown) => ctx.showError(error));
  return {
    element,
    dispose() {
      clearInterval(poll);
      clearInterval(tick);
    },
  };
}
