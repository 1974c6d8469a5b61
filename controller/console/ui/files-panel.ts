import type { FileContent, FileEntry, SessionClient, WatchFrame } from '../../../client/src/index.js';
import type { ConsoleContext } from './context.js';
import { field, fill, h } from './dom.js';
import type { Panel } from './session-view.js';

const WORKSPACE = '/workspace';
const MAX_EVENTS = 50;

const parentOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';
const join = (folder: string, name: string) => (name.startsWith('/') ? name : `${folder}/${name}`.replace(/\/+/g, '/'));

const CHANGED_ON_DISK = 'changed on disk since you opened it: saving overwrites that';

/** The workspace as a tree with an editor: open, edit, save, upload, download, rename, delete; changes live. */
export function createFilesPanel(ctx: ConsoleContext, session: SessionClient): Panel {
  const expanded = new Set<string>([WORKSPACE]);
  const listings = new Map<string, FileEntry[]>();
  let selected: { path: string; type: FileEntry['type'] } = { path: WORKSPACE, type: 'directory' };
  let openPath: string | undefined;
  let dirty = false;

  const tree = h('ul', { role: 'tree', 'aria-label': 'Workspace files', class: 'tree' });
  const nameInput = h('input', { name: 'path', placeholder: 'name or /workspace/path' });
  const upload = h('input', { type: 'file', multiple: true, class: 'visually-hidden', tabindex: '-1' });
  const button = (label: string, onclick: () => void, extra: Record<string, string> = {}) => h('button', { type: 'button', onclick, ...extra }, label);
  const toolbar = h(
    'div',
    { class: 'toolbar' },
    field('New name', nameInput),
    button('New file', () => void create('file')),
    button('New folder', () => void create('directory')),
    button('Rename selected', () => void rename()),
    button('Upload…', () => upload.click()),
    button('Refresh', () => void refresh()),
    upload,
  );
  const editorTitle = h('h3', { class: 'editor-title' }, 'No file open');
  const editor = h('textarea', { class: 'editor', 'aria-label': 'File content', spellcheck: 'false', disabled: true });
  const editorState = h('span', { class: 'muted', 'aria-live': 'polite' });
  const saveButton = button('Save', () => void save(), { disabled: 'true' });
  const downloadButton = button('Download', () => void download(), { disabled: 'true' });
  const deleteButton = button('Delete selected', () => void remove(), { class: 'danger' });
  const events = h('ol', { class: 'events', 'aria-label': 'Workspace changes', 'aria-live': 'polite' });
  const element = h(
    'div',
    { class: 'files' },
    toolbar,
    h('div', { class: 'files-body' },
      h('nav', { class: 'tree-pane', 'aria-label': 'Files' }, tree),
      h('div', { class: 'editor-pane' }, h('div', { class: 'toolbar' }, editorTitle, saveButton, downloadButton, deleteButton, editorState), editor),
    ),
    h('h3', {}, 'Live changes'),
    events,
  );

  const run = async (work: () => Promise<unknown>, done?: string) => {
    try {
      await work();
      if (done) ctx.announce(done);
    } catch (error) {
      ctx.showError(error);
    }
  };

  const item = (entry: FileEntry, depth: number): HTMLLIElement => {
    const isFolder = entry.type === 'directory';
    const open = expanded.has(entry.path);
    const label = h(
      'button',
      {
        type: 'button',
        class: `entry entry-${entry.type}${selected.path === entry.path ? ' selected' : ''}`,
        style: `padding-left: ${0.5 + depth}rem`,
        'aria-label': `${isFolder ? 'Folder' : entry.type === 'symlink' ? 'Link' : 'File'} ${entry.name}`,
        onclick: () => {
          selected = { path: entry.path, type: entry.type };
          if (isFolder) void toggle(entry.path);
          else if (entry.type === 'file') void openFile(entry.path);
          else render();
        },
      },
      `${isFolder ? (open ? '▾ ' : '▸ ') : ''}${entry.name}`,
    );
    const li = h('li', { role: 'treeitem', ...(isFolder ? { 'aria-expanded': String(open) } : {}), 'aria-selected': String(selected.path === entry.path) }, label);
    if (isFolder && open) li.append(h('ul', { role: 'group' }, ...(listings.get(entry.path) ?? []).map((child) => item(child, depth + 1))));
    return li;
  };

  const render = () => {
    const rootEntry: FileEntry = { name: 'workspace', path: WORKSPACE, type: 'directory', size: 0, mode: '0755', modified: '' };
    fill(tree, item(rootEntry, 0));
  };

  const load = async (folder: string) => {
    listings.set(folder, (await session.listFiles(folder, 1)).entries);
  };

  const refresh = async () => {
    await run(async () => {
      for (const folder of [...expanded]) {
        try {
          await load(folder);
        } catch {
          expanded.delete(folder);
          listings.delete(folder);
        }
      }
      render();
    });
  };

  const toggle = async (folder: string) => {
    if (expanded.has(folder) && folder !== WORKSPACE) expanded.delete(folder);
    else {
      expanded.add(folder);
      await run(() => load(folder));
    }
    render();
  };

  const setEditor = (path: string | undefined, content = '', note = '') => {
    openPath = path;
    dirty = false;
    editorTitle.textContent = path ?? 'No file open';
    editor.value = content;
    editor.disabled = path === undefined || note !== '';
    saveButton.disabled = editor.disabled;
    downloadButton.disabled = path === undefined;
    editorState.textContent = note;
  };

  const showFile = (path: string, file: FileContent) => {
    if (file.encoding === 'utf-8') setEditor(path, file.content);
    else setEditor(path, '', `binary file, ${file.size} bytes: download it`);
  };

  const openFile = async (path: string) => {
    render();
    await run(async () => showFile(path, await session.readFile(path)));
  };

  /**
   * The open file again, after a change on disk. Edits typed while it was read win: set over them, the reload would
   * throw them away (and a save right after would write the old content back).
   */
  const reloadOpenFile = async (path: string) => {
    await run(async () => {
      const file = await session.readFile(path);
      if (openPath !== path) return;
      if (dirty) editorState.textContent = CHANGED_ON_DISK;
      else showFile(path, file);
    });
  };

  const save = async () => {
    const path = openPath;
    if (!path) return;
    await run(async () => {
      await session.writeFile(path, editor.value);
      dirty = false;
      editorState.textContent = `saved ${new Date().toLocaleTimeString()}`;
    }, `${path} saved`);
  };

  const targetFolder = () => (selected.type === 'directory' ? selected.path : parentOf(selected.path));

  const create = async (type: 'file' | 'directory') => {
    const name = nameInput.value.trim();
    if (!name) return ctx.announce('Type a name first');
    const path = join(targetFolder(), name);
    await run(async () => {
      if (type === 'file') await session.writeFile(path, '');
      else await session.mkdir(path);
      expanded.add(parentOf(path));
      nameInput.value = '';
      await refresh();
      selected = { path, type };
      if (type === 'file') await openFile(path);
      else render();
    }, `${path} created`);
  };

  const rename = async () => {
    const name = nameInput.value.trim();
    if (!name || selected.path === WORKSPACE) return ctx.announce('Select an entry and type its new name first');
    const to = join(parentOf(selected.path), name);
    const from = selected.path;
    await run(async () => {
      await session.move({ from, to });
      if (openPath === from) setEditor(to, editor.value);
      selected = { ...selected, path: to };
      nameInput.value = '';
      await refresh();
    }, `${from} renamed to ${to}`);
  };

  const remove = async () => {
    const path = selected.path;
    if (path === WORKSPACE || !confirm(`Delete ${path}${selected.type === 'directory' ? ' and everything in it' : ''}?`)) return;
    await run(async () => {
      await session.deleteFile(path);
      if (openPath === path || openPath?.startsWith(`${path}/`)) setEditor(undefined);
      selected = { path: parentOf(path), type: 'directory' };
      await refresh();
    }, `${path} deleted`);
  };

  const download = async () => {
    const path = openPath;
    if (!path) return;
    await run(async () => {
      const bytes = await session.readBytes(path);
      const url = URL.createObjectURL(new Blob([bytes as BlobPart]));
      const link = h('a', { href: url, download: path.split('/').pop()! });
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
  };

  upload.addEventListener('change', () => {
    const files = [...(upload.files ?? [])];
    const folder = targetFolder();
    void run(async () => {
      for (const file of files) await session.writeFile(join(folder, file.name), new Uint8Array(await file.arrayBuffer()));
      upload.value = '';
      expanded.add(folder);
      await refresh();
    }, `${files.length} file(s) uploaded`);
  });

  editor.addEventListener('input', () => {
    dirty = true;
    editorState.textContent = 'unsaved changes';
  });
  editor.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === 's') {
      event.preventDefault();
      void save();
    }
  });

  // Live changes: logged, the tree refreshed, and the open file reloaded unless it has unsaved edits.
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  const onChange = (frame: WatchFrame) => {
    if (frame.type === 'ready') return;
    const text = frame.type === 'error' ? `watch error: ${frame.message}` : `${frame.type} ${frame.kind} ${frame.path}`;
    events.prepend(h('li', {}, `${new Date().toLocaleTimeString()} ${text}`));
    while (events.children.length > MAX_EVENTS) events.lastElementChild!.remove();
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => void refresh(), 300);
    if (frame.type === 'changed' && openPath === `${WORKSPACE}/${frame.path}`) {
      if (dirty) editorState.textContent = CHANGED_ON_DISK;
      else void reloadOpenFile(openPath);
    }
  };
  const watching = new AbortController();
  const watch = async () => {
    while (!watching.signal.aborted) {
      try {
        for await (const frame of session.watch({ signal: watching.signal })) onChange(frame);
      } catch (error) {
        if (watching.signal.aborted) return;
        events.prepend(h('li', { class: 'error' }, `watch interrupted (${error instanceof Error ? error.message : String(error)}); retrying`));
      }
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  };

  let started = false;
  return {
    element,
    show() {
      if (started) return;
      started = true;
      render();
      void refresh();
      void watch();
    },
    dispose() {
      watching.abort();
      clearTimeout(refreshTimer);
    },
  };
}
