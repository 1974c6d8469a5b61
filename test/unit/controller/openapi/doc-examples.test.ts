import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestController, type TestController } from '../../../helpers/controller-fakes.js';

const ROOT = join(import.meta.dirname, '../../../..');
// What a shell variable stands for in an example: `1` fits an id, a number and a string alike.
const VARIABLE_VALUE = '1';

interface CurlExample {
  where: string;
  method: string;
  /** The API path, without the origin: `/sessions/1/exec`. */
  path: string;
  body?: string;
  contentType?: string;
}

/** The markdown pages whose examples are checked: the README and every page of docs/. */
async function markdownPages(): Promise<string[]> {
  const docs = await readdir(join(ROOT, 'docs')).catch(() => [] as string[]);
  return ['README.md', ...docs.filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
}

/** Shell words of a command line: quotes removed, `$VAR`/`${VAR}` replaced, stops at `|`, `;`, `&&`, `>` or `#`. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const add = (text: string) => (word = (word ?? '') + text);
  const variable = (): string => {
    const match = /^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*|\([^)]*\))/.exec(line.slice(i));
    if (!match) {
      i += 1;
      return '$';
    }
    i += match[0].length;
    return `\u0000${match[1]!.replace(/[{}]/g, '')}\u0000`;
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      add(line.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) {
          add(line[i + 1]!);
          i += 2;
        } else if (line[i] === '$') add(variable());
        else add(line[i++]!);
      }
      i += 1;
    } else if (c === '$') add(variable());
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i += 1;
    } else if (word === undefined && (c === '|' || c === ';' || c === '&' || c === '>' || c === '#')) break;
    else add(line[i++]!);
  }
  if (word !== undefined) words.push(word);
  return words;
}

const OPTIONS_WITH_VALUE = new Set(['-X', '--request', '-H', '--header', '-d', '--data', '--data-binary', '--data-raw', '-o', '--output', '-w', '--write-out', '-u', '--max-time', '-m', '--unix-socket', '--json', '-T', '--upload-file']);

/** A shell variable's value where the page sets it (`R=http://localhost:8080`), else a stand-in that fits anything. */
function expand(text: string, variables: Map<string, string>): string {
  return text.replaceAll(/\u0000([^\u0000]*)\u0000/g, (_all, name: string) => variables.get(name) ?? VARIABLE_VALUE);
}

function parseCurl(words: string[], where: string, variables: Map<string, string>): CurlExample | undefined {
  let method: string | undefined;
  let url: string | undefined;
  let body: string | undefined;
  let contentType: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (OPTIONS_WITH_VALUE.has(word)) {
      const value = words[++i] ?? '';
      if (word === '-X' || word === '--request') method = value;
      else if (word === '-H' || word === '--header') {
        const [name, ...rest] = expand(value, variables).split(':');
        if (name!.trim().toLowerCase() === 'content-type') contentType = rest.join(':').trim();
      } else if (word.startsWith('-d') || word.startsWith('--data') || word === '--json' || word === '-T' || word === '--upload-file') body = value;
    } else if (!word.startsWith('-') && url === undefined) url = word;
  }
  const target = url === undefined ? undefined : /^https?:\/\/[^/]+(\/[^?#]*)?/.exec(expand(url, variables));
  if (!target) return undefined;
  return {
    where,
    method: (method ?? (body !== undefined ? 'POST' : 'GET')).toUpperCase(),
    path: target[1] ?? '/',
    ...(body !== undefined ? { body: expand(body, variables) } : {}),
    ...(contentType ? { contentType } : {}),
  };
}

/** Every curl call to the API in the code blocks of a page, with the variables the page set before it. */
function curlExamples(page: string, text: string): CurlExample[] {
  const examples: CurlExample[] = [];
  const variables = new Map<string, string>();
  let inBlock = false;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    if (lines[n]!.trimStart().startsWith('```')) {
      inBlock = !inBlock;
      continue;
    }
    if (!inBlock) continue;
    let line = lines[n]!;
    const start = n + 1;
    while (line.endsWith('\\') && n + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++n]}`;
    for (const [, name, value] of line.matchAll(/(?:^|[;\s])(?:export\s+)?([A-Za-z_]\w*)=("[^"]*"|'[^']*'|[^\s;]*)/g)) {
      const word = shellWords(value!)[0] ?? '';
      variables.set(name!, expand(word, variables));
    }
    // Each command of the line that is a curl (after `&&`, `;`, `|`, `$(`, or as an `until`/`if` condition).
    for (const match of line.matchAll(/(?:^|[;&|(]|\buntil|\bif|\bwhile|\bthen|\bdo)\s*(curl\s[^\n]*)/g)) {
      const example = parseCurl(shellWords(match[1]!), `${page}:${start}`, variables);
      if (example) examples.push(example);
    }
  }
  return examples;
}

type Operation = { requestBody?: { content: Record<string, { schema: object }> } };

/** The document's operation for a concrete path: `{param}` is one segment, a trailing `{path}` the rest. */
function findOperation(paths: Record<string, Record<string, Operation>>, method: string, path: string): Operation | undefined {
  const candidates = Object.entries(paths)
    .filter(([template]) => {
      const pattern = template.replace(/\{path\}$/, '\u0001').replace(/\{[^}]+\}/g, '[^/]+').replace('\u0001', '.+');
      return new RegExp(`^${pattern}/?$`).test(path);
    })
    // A literal segment wins over a parameter, as in the router.
    .sort(([a], [b]) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
  for (const [, operations] of candidates) {
    const operation = operations[method.toLowerCase()];
    if (operation) return operation;
  }
  return undefined;
}

describe('the examples in the docs', () => {
  let ctl: TestController;
  let paths: Record<string, Record<string, Operation>>;
  beforeAll(async () => {
    ctl = await createTestController();
    paths = (await ctl.app.inject({ url: '/openapi.json' })).json().paths;
  });
  afterAll(async () => ctl.close());

  it('finds the curl examples it checks', async () => {
    expect(curlExamples('x.md', "```bash\nexport R=http://localhost:8080\ncurl -X POST $R/sessions/$S/exec -H \"$H\" -H \"$J\" \\\n  -d '{\"command\":[\"ls\"],\"workdir\":\"'$W'\"}'\n```")).toEqual([
      { where: 'x.md:3', method: 'POST', path: '/sessions/1/exec', body: '{"command":["ls"],"workdir":"1"}' },
    ]);
  });

  it('call routes the OpenAPI document has, with bodies its request schemas accept', async () => {
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const problems: string[] = [];
    let checked = 0;
    for (const page of await markdownPages()) {
      const text = await readFile(join(ROOT, page), 'utf8');
      for (const example of curlExamples(page, text)) {
        checked += 1;
        // An agent's own API is the session API without the `/sessions/{id}` prefix.
        const operation =
          findOperation(paths, example.method, example.path) ?? findOperation(paths, example.method, `/sessions/${VARIABLE_VALUE}${example.path}`);
        if (!operation) {
          problems.push(`${example.where}: ${example.method} ${example.path} is not in the document`);
          continue;
        }
        if (example.body === undefined || example.body.startsWith('@') || (example.contentType && !example.contentType.includes('json'))) continue;
        const schema = operation.requestBody?.content['application/json']?.schema;
        if (!schema) {
          problems.push(`${example.where}: ${example.method} ${example.path} takes no JSON body`);
          continue;
        }
        let body: unknown;
        try {
          body = JSON.parse(example.body);
        } catch {
          problems.push(`${example.where}: the body is not JSON: ${example.body}`);
          continue;
        }
        const validate = ajv.compile(schema);
        if (!validate(body)) problems.push(`${example.where}: ${ajv.errorsText(validate.errors)} in ${example.body}`);
      }
    }
    expect(problems).toEqual([]);
    // The README alone has a first session and a lab end to end.
    expect(checked).toBeGreaterThan(10);
  });
});
