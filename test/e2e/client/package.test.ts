import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../../..');
const TSC = join(ROOT, 'node_modules/.bin/tsc');

describe('the client as a package', { timeout: 180_000 }, () => {
  let folder: string;
  let project: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'client-pack-'));
    project = join(folder, 'project');
    await mkdir(project);
    // Its dependencies packed from this tree's own copies: the install needs no registry.
    await run('npm', ['pack', '--pack-destination', folder, join(ROOT, 'node_modules/zod'), join(ROOT, 'node_modules/ws')], { cwd: folder });
    await run('npm', ['pack', '--pack-destination', folder], { cwd: join(ROOT, 'client') });
    const tarballs = (await readdir(folder)).filter((name) => name.endsWith('.tgz')).map((name) => join(folder, name));
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'a-backend', version: '1.0.0', private: true, type: 'module' }));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], { cwd: project });
  }, 180_000);
  afterAll(async () => rm(folder, { recursive: true, force: true }));

  it('packs only its build, installs into another project and answers from there', async () => {
    const { stdout: listing } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: join(ROOT, 'client') });
    const files = (JSON.parse(listing) as [{ files: { path: string }[] }])[0].files.map((file) => file.path);
    expect(files).toContain('dist/client/src/index.js');
    expect(files).toContain('dist/client/src/node.d.ts');
    expect(files.filter((path) => !path.startsWith('dist/') && path !== 'package.json')).toEqual([]);

    const server = createServer((request, response) => {
      response.setHeader('content-type', 'application/json');
      if (request.headers.authorization !== 'Bearer backend-token-0123456789') {
        response.statusCode = 401;
        response.end(JSON.stringify({ code: 'UNAUTHORIZED', message: 'missing or wrong bearer token' }));
      } else response.end(JSON.stringify({ sessions: [] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await writeFile(
        join(project, 'main.mjs'),
        [
          "import { RunnerClient, RunnerError } from '@runner/client';",
          "import { attachTerminal } from '@runner/client/node';",
          `const good = new RunnerClient({ baseUrl: '${url}', token: 'backend-token-0123456789' });`,
          `const bad = new RunnerClient({ baseUrl: '${url}', token: 'nope' });`,
          'const error = await bad.listSessions().catch((e) => e);',
          'console.log(JSON.stringify({ sessions: await good.listSessions(), code: error instanceof RunnerError && error.code, attach: typeof attachTerminal }));',
        ].join('\n'),
      );
      const { stdout } = await run('node', ['main.mjs'], { cwd: project });
      expect(JSON.parse(stdout)).toEqual({ sessions: [], code: 'UNAUTHORIZED', attach: 'function' });
    } finally {
      server.close();
    }
  });

  it('gives another project the types of the shared schemas', async () => {
    await writeFile(
      join(project, 'typed.ts'),
      [
        "import { RunnerClient, type ExecResult, type SessionInfo } from '@runner/client';",
        "const client = new RunnerClient({ baseUrl: 'http://localhost:8080' });",
        "export const created: Promise<SessionInfo> = client.createSession({ session_id: 'lab1' });",
        "export const code: Promise<ExecResult['exit_code']> = client.session('lab1').exec({ command: ['true'] }).then((r) => r.exit_code);",
      ].join('\n'),
    );
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023', '--lib', 'es2023,dom', '--skipLibCheck', 'false'];
    await run(TSC, [...args, 'typed.ts'], { cwd: project });
    // And the types are real: a wrong field name is an error.
    await writeFile(join(project, 'wrong.ts'), "import { RunnerClient } from '@runner/client';\nnew RunnerClient({ baseUrl: '' }).createSession({ sessionId: 'x' });\n");
    const failed = await run(TSC, [...args, 'wrong.ts'], { cwd: project }).then(() => '', (error: { stdout: string }) => error.stdout);
    expect(failed).toContain("'sessionId' does not exist");
  });
});
