import { RunnerClient, RunnerError } from '../../../client/src/index.js';
import type { ConsoleContext, View } from './context.js';
import { field, fill, h } from './dom.js';
import { describeError } from './errors.js';
import { showSession } from './session-view.js';
import { showSessions } from './sessions-view.js';

// The token lives in this tab's sessionStorage only: never in a URL, a cookie or localStorage.
const TOKEN_KEY = 'runner.console.token';

const main = document.getElementById('main')!;
const banner = document.getElementById('banner')!;
const status = document.getElementById('status')!;
const signOutButton = document.getElementById('sign-out') as HTMLButtonElement;
let current: View | undefined;

function showBanner(message: string): void {
  fill(banner, h('span', {}, message), h('button', { type: 'button', class: 'link', onclick: () => fill(banner) }, 'Dismiss'));
}

function signOut(reason?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  current?.dispose();
  current = undefined;
  showSignIn(reason);
}

const context = (client: RunnerClient): ConsoleContext => ({
  client,
  showError(error) {
    if (error instanceof RunnerError && error.code === 'UNAUTHORIZED') signOut(describeError(error));
    else showBanner(describeError(error));
  },
  announce(message) {
    status.textContent = message;
  },
});

function route(ctx: ConsoleContext): void {
  current?.dispose();
  fill(banner);
  const match = /^#\/sessions\/([^/]+)$/.exec(location.hash);
  current = match ? showSession(ctx, decodeURIComponent(match[1]!)) : showSessions(ctx);
  fill(main, current.element);
  main.querySelector<HTMLElement>('h1, h2')?.focus();
}

function start(token: string): void {
  signOutButton.hidden = false;
  const ctx = context(new RunnerClient({ baseUrl: '', token: token || undefined }));
  window.onhashchange = () => route(ctx);
  route(ctx);
}

function showSignIn(reason?: string): void {
  signOutButton.hidden = true;
  window.onhashchange = null;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: false });
  const error = h('p', { class: 'error', role: 'alert' }, reason ?? '');
  const form = h(
    'form',
    { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h2', { id: 'sign-in-title', tabindex: '-1' }, 'Sign in'),
    h('p', {}, "Enter the runner's API token (RUNNER_API_TOKEN). It is kept in this tab only and sent with every request."),
    field('API token', input),
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    try {
      await new RunnerClient({ baseUrl: '', token: token || undefined }).listSessions();
    } catch (failure) {
      error.textContent = describeError(failure);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start(token);
  });
  fill(main, form);
  input.focus();
}

signOutButton.addEventListener('click', () => signOut());
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved === null) showSignIn();
else start(saved);
