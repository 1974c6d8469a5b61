import type { SessionClient } from '../../../client/src/index.js';
import type { ConsoleContext } from './context.js';
import { field, fill, h } from './dom.js';
import type { Panel } from './session-view.js';

// Whether the runner serves previews on origins of their own (PREVIEW_DOMAIN): the console's settings say, once.
let previewsOn: Promise<boolean> | undefined;
function previewsAreOn(): Promise<boolean> {
  previewsOn ??= fetch('/console/settings.json')
    .then((response) => response.json() as Promise<{ previews: boolean }>)
    .then((settings) => settings.previews === true, () => false);
  return previewsOn;
}

/**
 * A page served on a port inside the session. With previews on (PREVIEW_DOMAIN), a preview grant opens the app on
 * its own origin in a frame, scripts, assets and WebSockets included: another origin cannot reach the console or
 * its token. Without, the page is fetched through the controller's proxy with the token and shown in a frame with
 * no scripts and no access to the console (its own images and scripts would need the token too).
 */
export function createPreviewPanel(ctx: ConsoleContext, session: SessionClient): Panel {
  const portInput = h('input', { name: 'port', type: 'number', min: '1', max: '65535', value: '8080', required: true });
  const pathInput = h('input', { name: 'path', value: '/' });
  const quick = h('div', { class: 'quick-ports', 'aria-label': 'Published ports' });
  const form = h('form', { class: 'toolbar', 'aria-label': 'Preview a port' }, field('Port', portInput), field('Path', pathInput), h('button', { type: 'submit' }, 'Load'), quick);
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Load a port to preview what the session serves there.');
  const frameHolder = h('div', { class: 'preview-frame' });
  const text = h('pre', { class: 'logs', hidden: true });
  const element = h('div', { class: 'preview-panel' }, form, summary, frameHolder, text);

  // A fresh frame per load: a frame's sandbox applies from its next navigation only.
  const showFrame = (sandbox: string, load: (frame: HTMLIFrameElement) => void) => {
    const frame = h('iframe', { class: 'preview', title: 'Preview of the session port', sandbox });
    load(frame);
    fill(frameHolder, frame);
    text.hidden = true;
  };

  const loadOnOwnOrigin = async (port: number, path: string) => {
    const { url } = await session.createGrant({ capability: 'preview', port, path });
    showFrame('allow-scripts allow-same-origin allow-forms allow-popups', (frame) => (frame.src = url));
    summary.textContent = `Port ${port} on its own origin: ${new URL(url).origin}`;
  };

  const loadThroughProxy = async (port: number, path: string) => {
    const response = await fetch(`/sessions/${encodeURIComponent(session.id)}/ports/${port}${path}`, { headers: ctx.client.transport.authHeaders() });
    const type = response.headers.get('content-type') ?? '';
    const body = await response.text();
    summary.textContent = `HTTP ${response.status} · ${type || 'no content type'} · ${body.length} characters (previews are off: shown without its scripts)`;
    if (!response.ok && type.includes('json')) {
      const error = JSON.parse(body) as { code?: string; message?: string };
      if (error.code) summary.textContent += ` · ${error.code}: ${error.message}`;
    }
    if (type.includes('text/html')) return showFrame('', (frame) => (frame.srcdoc = body));
    fill(frameHolder);
    text.hidden = false;
    text.textContent = body;
  };

  const load = async () => {
    const path = pathInput.value.startsWith('/') ? pathInput.value : `/${pathInput.value}`;
    const port = Number(portInput.value);
    try {
      if (await previewsAreOn()) await loadOnOwnOrigin(port, path);
      else await loadThroughProxy(port, path);
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
