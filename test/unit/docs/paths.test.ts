import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = new URL('../../..', import.meta.url).pathname;
const pages = ['README.md', ...readdirSync(join(REPO, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
// Files the runner writes itself, named by the docs before they exist.
const GENERATED = new Set(['test/bench/results/latest.json', 'test/bench/results/density.json', 'test/bench/results/profiles']);
const REPO_PATH = /^(agent|controller|shared|core|client|image|scripts|test|docs|deploy)\/[\w./-]*$|^(Dockerfile\.\w+|package\.json)$/;

/** Repository paths a page names: `inline code` that is a path, and relative link targets, outside fenced blocks. */
function namedPaths(page: string): string[] {
  const text = readFileSync(join(REPO, page), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  const spans = [...text.matchAll(/`([^`\s]+)`/g)].map((m) => m[1]!).filter((s) => REPO_PATH.test(s));
  const links = [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
    .map((m) => m[1]!)
    .filter((l) => !/^[a-z]+:/.test(l))
    .map((l) => normalize(join(dirname(page), l)));
  return [...spans, ...links].map((p) => p.replace(/\/$/, ''));
}

describe('the docs name only what is in the tree', () => {
  it.each(pages)('%s', (page) => {
    const missing = namedPaths(page).filter((p) => !GENERATED.has(p) && !existsSync(join(REPO, p)));
    expect(missing).toEqual([]);
  });
});
