import type { SessionClient } from '../../../client/src/index.js';
import type { ConsoleContext } from './context.js';
import { field, fill, h } from './dom.js';
import type { Panel } from './session-view.js';

/**
 * A page served on a port inside the session, fetched through the controller's proxy with the token and shown in a
 * sandboxed frame (no scripts, no access to the console): its own images and scripts would need the token too.
 */
export function createPreviewPanel(ctx: ConsoleContext, session: SessionClient): Panel {
  const portInput = h('input', { name: 'port', type: 'number', min: '1', max: '65535', value: '8080', required: true });
  const pathInput = h('input', { name: 'path', value: '/' });
  const quick = h('div', { class: 'quick-ports', 'aria-label': 'Published ports' });
  const form = h('form', { class: 'toolbar', 'aria-label': 'Preview a port' }, field('Port', portInput), field('Path', pathInput), h('button', { type: 'submit' }, 'Load'), quick);
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Load a port to preview what the session serves there.');
  const frame = h('iframe', { class: 'preview', title: 'Preview of the session port', sandbox: '' });
  const text = h('pre', { class: 'logs', hidden: true });
  const element = h('div', { class: 'preview-panel' }, form, summary, frame, text);

  const load = async () => {
    const path = pathInput.value.startsWith('/') ? pathInput.value : `/${pathInput.value}`;
    const url = `/sessions/${encodeURIComponent(session.id)}/ports/${Number(portInput.value)}${path}`;
    try {
      const response = await fetch(url, { headers: ctx.client.transport.authHeaders() });
      const type = response.headers.get('content-type') ?? '';
      const body = await response.text();
      summary.textContent = `HTTP ${response.status} · ${type || 'no content type'} · ${body.length} characters`;
      if (!response.ok && type.includes('json')) {
        const error = JSON.parse(body) as { code?: string; message?: string };
        if (error.code) summary.textContent += ` · ${error.code}: ${error.message}`;
      }
      const html = type.includes('text/html');
      frame.hidden = !html;
      text.hidden = html;
      if (html) frame.srcdoc = body;
      else text.textContent = body;
    } catch (error) {
      ctx.showError(error);
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void load();
  });

  const findPorts = async () => {
    try {
      const { containers } = await session.containers();
      const published = containers.flatMap((container) => container.ports.filter((port) => port.host_port).map((port) => ({ name: container.name, port: port.host_port! })));
      fill(quick, ...published.map(({ name, port }) => h('button', { type: 'button', onclick: () => {
        portInput.value = String(port);
        void load();
      } }, `${name}:${port}`)));
    } catch (error) {
      ctx.showError(error);
    }
  };
  return { element, show: () => void findPorts(), dispose() {} };
}
