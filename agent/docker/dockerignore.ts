import { posix } from 'node:path';

/** A pattern Docker would refuse; the agent answers it as VALIDATION. Not an AppError: the learner's packer loads this file without zod. */
export class DockerignoreError extends Error {
  override readonly name = 'DockerignoreError';
  readonly code = 'VALIDATION';
}

interface Rule {
  pattern: string;
  regex: RegExp;
  /** A `!pattern` line: brings back what earlier lines excluded. */
  negated: boolean;
}

/** Decides which files of a build context `.dockerignore` leaves out, with Docker's rules (the last matching line wins). */
export class Dockerignore {
  readonly #rules: Rule[];

  constructor(text: string) {
    this.#rules = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => {
        const negated = line.startsWith('!');
        const pattern = posix.normalize(negated ? line.slice(1).trim() : line).replace(/^\/+|\/+$/g, '');
        const regex = toRegExp(pattern);
        if (!regex) throw new DockerignoreError(`.dockerignore: invalid pattern ${line}`);
        return { pattern, regex, negated };
      })
      .filter((rule) => rule.pattern !== '' && rule.pattern !== '.');
  }

  /** True when `path` (relative to the context, `/`-separated) is excluded, itself or through a parent folder. */
  excludes(path: string): boolean {
    const parents = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of this.#rules) {
      if (rule.negated !== excluded) continue;
      if (rule.regex.test(path) || parents.some((parent) => rule.regex.test(parent))) excluded = !rule.negated;
    }
    return excluded;
  }

  /** Whether a `!` line names something inside `folder` (Docker's test for walking into an excluded folder). */
  mayReinclude(folder: string): boolean {
    return this.#rules.some((rule) => rule.negated && `${rule.pattern}/`.startsWith(`${folder}/`));
  }
}

// Go's filepath.Match syntax plus `**` (any number of folders), as Docker's patternmatcher reads it.
function toRegExp(pattern: string): RegExp | undefined {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i]!;
    if (char === '*' && pattern[i + 1] === '*') {
      i += 1;
      if (pattern[i + 1] === '/') {
        i += 1;
        source += '(?:.*/)?';
      } else {
        source += '.*';
      }
    } else if (char === '*') {
      source += '[^/]*';
    } else if (char === '?') {
      source += '[^/]';
    } else if (char === '[') {
      const close = pattern.indexOf(']', i + 1);
      if (close === -1) return undefined;
      const body = pattern.slice(i + 1, close);
      source += body.startsWith('^') ? `[^/${body.slice(1)}]` : `[${body}]`;
      i = close;
    } else if (char === '\\' && i + 1 < pattern.length) {
      i += 1;
      source += escapeRegExp(pattern[i]!);
    } else {
      source += escapeRegExp(char);
    }
  }
  try {
    return new RegExp(`^${source}$`);
  } catch {
    // A character class JavaScript refuses (such as `[z-a]`) is as bad a pattern for Docker.
    return undefined;
  }
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
