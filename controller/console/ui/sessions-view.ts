import type { SessionInfo, SessionUsage } from '../../../client/src/index.js';
import type { ConsoleContext, View } from './context.js';
import { field, fill, formatTimeLeft, h } from './dom.js';

const POLL_MS = 5000;
const EXTEND_SECONDS = 30 * 60;

const MIB = 2 ** 20;

/** The memory cell: in use, and of what limit. */
function memoryText(usage: SessionUsage | null | undefined): string {
  if (usage?.memory_bytes == null) return '—';
  const used = (usage.memory_bytes / MIB).toFixed(0);
  return usage.memory_limit_bytes == null ? `${used} MiB` : `${used} / ${(usage.memory_limit_bytes / MIB).toFixed(0)} MiB`;
}

/** One CPU reading of a session, and the share of a core it used since the one before. */
interface CpuSample {
  seconds: number;
  at: number;
  percent?: number;
}

/** The CPU cell: the share of one core between the last two readings, or the CPU time until there are two. */
function cpuText(sample: CpuSample | undefined): string {
  if (!sample) return '—';
  return sample.percent === undefined ? `${sample.seconds.toFixed(1)} s` : `${sample.percent.toFixed(0)} %`;
}

// A new reading (the runner caches them for a few seconds) gives the share of a core since the last one.
function nextCpuSample(previous: CpuSample | undefined, usage: SessionUsage | null | undefined): CpuSample | undefined {
  if (usage?.cpu_seconds == null) return undefined;
  const at = Date.parse(usage.measured_at);
  if (previous && at === previous.at) return previous;
  const elapsed = previous ? (at - previous.at) / 1000 : 0;
  const percent = previous && elapsed > 0 ? Math.max(0, ((usage.cpu_seconds - previous.seconds) / elapsed) * 100) : undefined;
  return { seconds: usage.cpu_seconds, at, ...(percent === undefined ? {} : { percent }) };
}

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
    const timeLeft = h('td', { class: 'time-left', 'data-expires': session.expires_at }, formatTimeLeft(session.expires_at));
    const cells = [
      h('td', {}, h('a', { href: `#/sessions/${encodeURIComponent(id)}` }, id)),
      h('td', {}, h('span', { class: `status status-${session.status}` }, session.status)),
      timeLeft,
      ...(showUsage ? [h('td', { class: 'memory' }, memoryText(session.usage)), h('td', { class: 'cpu' }, cpuText(cpuSamples.get(id)))] : []),
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
  const cpuSamples = new Map<string, CpuSample>();
  const render = () => {
    showUsage = sessions.some((session) => session.usage != null);
    const seen = new Set(sessions.map((session) => session.session_id));
    for (const id of cpuSamples.keys()) if (!seen.has(id)) cpuSamples.delete(id);
    for (const session of sessions) {
      const sample = nextCpuSample(cpuSamples.get(session.session_id), session.usage);
      if (sample) cpuSamples.set(session.session_id, sample);
      else cpuSamples.delete(session.session_id);
    }
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
