import type { ContainerSummary, SessionClient } from '../../../client/src/index.js';
import type { ConsoleContext } from './context.js';
import { fill, h } from './dom.js';
import type { Panel } from './session-view.js';

const POLL_MS = 5000;

/** Containers on the session's own Docker, with their logs. */
export function createContainersPanel(ctx: ConsoleContext, session: SessionClient): Panel {
  const body = h('tbody');
  const table = h(
    'table',
    {},
    h('caption', { class: 'visually-hidden' }, "Containers in the session's Docker"),
    h('thead', {}, h('tr', {}, ...['Name', 'Image', 'State', 'Status', 'Ports', 'Actions'].map((name) => h('th', { scope: 'col' }, name)))),
    body,
  );
  const empty = h('p', { class: 'muted' }, 'No containers.');
  const logsTitle = h('h3', {}, 'Logs');
  const logs = h('pre', { class: 'logs', tabindex: '0', 'aria-label': 'Container logs' }, 'Choose a container to see its logs.');
  const element = h('div', { class: 'containers' }, h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => void refresh() }, 'Refresh')), h('div', { class: 'table-wrap' }, table), empty, logsTitle, logs);

  let shownLogs: string | undefined;
  const showLogs = async (name: string) => {
    shownLogs = name;
    try {
      const { logs: lines } = await session.containerLogs(name, 500);
      logsTitle.textContent = `Logs of ${name}`;
      logs.textContent = lines.join('\n') || '(no output)';
    } catch (error) {
      ctx.showError(error);
    }
  };
  const ports = (container: ContainerSummary) =>
    container.ports.map((port) => (port.host_port ? `${port.host_port}→${port.container_port}/${port.protocol}` : `${port.container_port}/${port.protocol}`)).join(', ');
  const refresh = async () => {
    try {
      const { containers } = await session.containers();
      fill(body, ...containers.map((container) =>
        h('tr', {},
          h('td', {}, container.name),
          h('td', {}, container.image),
          h('td', {}, container.state),
          h('td', {}, container.status),
          h('td', {}, ports(container)),
          h('td', {}, h('button', { type: 'button', 'aria-label': `Logs of ${container.name}`, onclick: () => void showLogs(container.name) }, 'Logs')),
        ),
      ));
      empty.hidden = containers.length > 0;
      table.hidden = containers.length === 0;
      if (shownLogs && containers.some((container) => container.name === shownLogs)) await showLogs(shownLogs);
    } catch (error) {
      ctx.showError(error);
    }
  };

  let poll: ReturnType<typeof setInterval> | undefined;
  return {
    element,
    show() {
      void refresh();
      clearInterval(poll);
      poll = setInterval(() => void refresh(), POLL_MS);
    },
    hide() {
      clearInterval(poll);
    },
    dispose() {
      clearInterval(poll);
    },
  };
}
