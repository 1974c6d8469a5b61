import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

// Which folders of the tree each folder's files may import from; the agent and the controller meet only through
// shared/ (over the wire) and core/ (what both need and neither owns).
const MAY_IMPORT: Record<string, readonly string[]> = {
  shared: ['shared'],
  core: ['core', 'shared'],
  agent: ['agent', 'core', 'shared'],
  // The seccomp profile is a file of the session image the controller hands to Docker.
  // The console's page uses the typed client.
  controller: ['controller', 'core', 'shared', 'image', 'client'],
  client: ['client', 'shared'],
};
// The client's Node-only entry; everything else of client/ runs in browsers too.
const CLIENT_NODE_ENTRY = 'client/src/node.ts';
// shared/ holds wire formats only: its one library is the schema library.
const SHARED_PACKAGES = ['zod'];

interface Source {
  /** Relative to the repository, with forward slashes. */
  path: string;
  text: string;
}

/** Every import that crosses a line, as `file: imports 'specifier' (why)`. */
function findCrossings(sources: Source[]): string[] {
  const crossings: string[] = [];
  for (const { path, text } of sources) {
    const folder = path.split('/')[0]!;
    const allowed = MAY_IMPORT[folder];
    if (!allowed) continue;
    // Static imports, re-exports, `import type`, dynamic import() and require() alike.
    for (const { fileName: specifier } of ts.preProcessFile(text, true, true).importedFiles) {
      if (specifier.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(path), specifier));
        const targetFolder = target.split('/')[0]!;
        if (target.startsWith('..') || !allowed.includes(targetFolder)) {
          crossings.push(`${path}: imports '${specifier}' (${folder}/ may import only ${allowed.map((f) => `${f}/`).join(', ')})`);
        }
      } else if (folder === 'shared' && !SHARED_PACKAGES.some((name) => specifier === name || specifier.startsWith(`${name}/`))) {
        crossings.push(`${path}: imports '${specifier}' (shared/ may import only ${SHARED_PACKAGES.join(', ')} and itself)`);
      } else if (folder === 'client' && path !== CLIENT_NODE_ENTRY && !SHARED_PACKAGES.includes(specifier)) {
        crossings.push(`${path}: imports '${specifier}' (the client's browser path may import only ${SHARED_PACKAGES.join(', ')}; Node-only code goes in ${CLIENT_NODE_ENTRY})`);
      }
    }
  }
  return crossings;
}

async function readSources(folder: string): Promise<Source[]> {
  const entries = await readdir(join(ROOT, folder), { recursive: true, withFileTypes: true });
  // Build output (client/dist) is not source.
  const files = entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !/[\\/]dist([\\/]|$)/.test(entry.parentPath));
  return Promise.all(
    files.map(async (entry) => {
      const absolute = join(entry.parentPath, entry.name);
      return { path: relative(ROOT, absolute).split('\\').join('/'), text: await readFile(absolute, 'utf8') };
    }),
  );
}

describe('import boundaries', () => {
  it('no import crosses a line: agent and controller never import each other, core only shared, shared only zod', async () => {
    const sources = (await Promise.all(Object.keys(MAY_IMPORT).map(readSources))).flat();
    for (const folder of Object.keys(MAY_IMPORT)) {
      expect(sources.some((source) => source.path.startsWith(`${folder}/`)), `${folder}/ has sources`).toBe(true);
    }
    expect(findCrossings(sources)).toEqual([]);
  });

  it('names the file and the import of every kind of crossing', () => {
    const crossings = findCrossings([
      { path: 'controller/app.ts', text: "import { sendError } from '../agent/http/file-errors.js';" },
      { path: 'agent/docker/run.ts', text: "export { x } from '../../controller/config.js';" },
      { path: 'core/http/server.ts', text: "const m = await import('../../agent/app.js');" },
      { path: 'shared/routes.ts', text: "import type Docker from 'dockerode';\nimport { z } from 'zod';" },
      { path: 'shared/errors.ts', text: "import { x } from '../core/session-layout.js';" },
      { path: 'agent/app.ts', text: "import { x } from '../core/http/server.js';\nimport { y } from './config.js';" },
      { path: 'client/src/transport.ts', text: "import { request } from 'node:http';" },
      { path: 'client/src/node.ts', text: "import WebSocket from 'ws';" },
    ]);
    expect(crossings).toEqual([
      "controller/app.ts: imports '../agent/http/file-errors.js' (controller/ may import only controller/, core/, shared/, image/, client/)",
      "agent/docker/run.ts: imports '../../controller/config.js' (agent/ may import only agent/, core/, shared/)",
      "core/http/server.ts: imports '../../agent/app.js' (core/ may import only core/, shared/)",
      "shared/routes.ts: imports 'dockerode' (shared/ may import only zod and itself)",
      "shared/errors.ts: imports '../core/session-layout.js' (shared/ may import only shared/)",
      "client/src/transport.ts: imports 'node:http' (the client's browser path may import only zod; Node-only code goes in client/src/node.ts)",
    ]);
  });
});
