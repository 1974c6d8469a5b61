import { describe, expect, it } from 'vitest';
import { Dockerignore } from '../../../../agent/docker/dockerignore.js';

describe('.dockerignore', () => {
  const ignore = new Dockerignore(
    ['# comment', 'node_modules', '*.log', '!keep.log', '**/tmp', '/build/', 'docs/**/*.md', '!docs/README.md', 'secret?.txt'].join('\n'),
  );

  it.each([
    ['node_modules', true],
    ['node_modules/a/index.js', true],
    ['src/node_modules', false],
    ['debug.log', true],
    ['keep.log', false],
    ['logs/debug.log', false],
    ['tmp', true],
    ['a/b/tmp/x', true],
    ['build/out.js', true],
    ['docs/guide/intro.md', true],
    ['docs/intro.md', true],
    ['docs/README.md', false],
    ['secret1.txt', true],
    ['secret12.txt', false],
    ['src/index.js', false],
    ['# comment', false],
  ])('%s excluded: %s', (path, excluded) => {
    expect(ignore.excludes(path)).toBe(excluded);
  });
});

describe('.dockerignore with a broken pattern', () => {
  it.each(['[abc', 'a[z-a]'])('refuses %s as a client error', (pattern) => {
    expect(() => new Dockerignore(pattern)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });
});
