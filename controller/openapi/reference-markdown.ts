/** The parts of an OpenAPI 3.1 document the Markdown reference reads. */
export interface ReferenceDocument {
  paths: Record<string, Record<string, ReferenceOperation>>;
}

interface ReferenceOperation {
  summary?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown>; required?: string[] } }> };
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
}

const METHOD_ORDER = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * The API reference as Markdown, one table per tag: each operation with its summary, what it takes and what it may
 * answer (success media types; error statuses with their codes). Written from the OpenAPI document alone, so the
 * page says exactly what the controller serves.
 */
export function renderApiReference(doc: ReferenceDocument): string {
  const byTag = new Map<string, string[]>();
  for (const [path, operations] of Object.entries(doc.paths)) {
    const methods = Object.keys(operations).sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
    for (const method of methods) {
      const operation = operations[method]!;
      const tag = operation.tags?.[0] ?? 'other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), row(method, path, operation)]);
    }
  }
  const lines = [
    '# API reference',
    '',
    'Generated from the controller\'s OpenAPI document (`GET /openapi.json`; the same document drives the page at',
    '`/docs`). Every error is `{code, message, …details}`. Routes marked *public* need no bearer token; every other',
    'route needs `Authorization: Bearer $RUNNER_API_TOKEN` when the controller has one. The guide with examples is',
    '[api.md](api.md).',
    '',
  ];
  for (const [tag, rows] of byTag) {
    lines.push(`## ${tag}`, '', '| operation | what | takes | answers |', '|---|---|---|---|', ...rows, '');
  }
  return lines.join('\n');
}

function row(method: string, path: string, operation: ReferenceOperation): string {
  const takes = [...parameters(operation), ...bodyFields(operation)].join(', ') || '—';
  const what = `${cell(operation.summary ?? '')}${operation.security?.length === 0 ? ' *(public)*' : ''}`;
  return `| \`${method.toUpperCase()} ${path}\` | ${what} | ${takes} | ${answers(operation)} |`;
}

function parameters(operation: ReferenceOperation): string[] {
  return (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => `\`?${p.name}\`${p.required ? '' : ' (optional)'}`);
}

function bodyFields(operation: ReferenceOperation): string[] {
  const content = operation.requestBody?.content ?? {};
  return Object.entries(content).flatMap(([type, media]) => {
    const properties = Object.keys(media.schema?.properties ?? {});
    if (properties.length === 0) return [`body \`${type}\``];
    const required = new Set(media.schema?.required ?? []);
    return [`body {${properties.map((name) => (required.has(name) ? `\`${name}\`` : `\`${name}\`?`)).join(', ')}}`];
  });
}

function answers(operation: ReferenceOperation): string {
  return Object.entries(operation.responses ?? {})
    .map(([status, response]) => {
      const codes = /^Error: (.*)$/.exec(response.description ?? '')?.[1];
      if (codes) return `${status} ${codes.split(', ').map((code) => `\`${code}\``).join(' ')}`;
      const types = Object.keys(response.content ?? {});
      return types.length ? `${status} ${types.map((type) => `\`${type}\``).join(' ')}` : status;
    })
    .join('<br>');
}

// A table cell holds no pipe and no line break.
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}
