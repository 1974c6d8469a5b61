import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { packBuildContext, resolveBuildContext } from '../../../../agent/docker/build-context.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

const run = promisify(execFile);

describe('build context', () => {
  let agent: TestAgent;
  let scratch: string | undefined;
  afterEach(async () => {
    await agent?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** The entries of the packed context as GNU tar lists them: `name`, `folder/`, `link -> target`. */
  async function packedEntries(contextPath: string, dockerfilePath = 'Dockerfile'): Promise<string[]> {
    const context = await resolveBuildContext(agent.workspace, contextPath, dockerfilePath, agent.config.learner);
    scratch = await mkdtemp(join(tmpdir(), 'agtest-context-'));
    const archive = join(scratch, 'context.tar');
    await pipeline(packBuildContext(context), createWriteStream(archive));
    const { stdout } = await run('tar', ['-tvf', archive]);
    // `-rw-r--r-- 0/0 0 2024-01-01 00:00 name`: the name is everything after the time.
    return stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/).slice(5).join(' ') + (line.startsWith('d') ? '/' : ''))
      .filter((name) => name !== './')
      .sort();
  }

  it('ships symlinks as links, never what they point to', async () => {
    agent = await createTestAgent();
    await writeFile(join(agent.workspace, 'Dockerfile'), 'FROM scratch\n');
    await writeFile(join(agent.outside, 'secret'), 'outside');
    await symlink('/etc', join(agent.workspace, 'etc-link'));
    await symlink(join(agent.outside, 'secret'), join(agent.workspace, 'secret-link'));
    expect(await packedEntries('/workspace')).toEqual(['Dockerfile', `secret-link -> ${join(agent.outside, 'secret')}`, 'etc-link -> /etc'].sort());
  });

  it('leaves out what .dockerignore excludes, but keeps the Dockerfile and .dockerignore', async () => {
    agent = await createTestAgent();
    const app = join(agent.workspace, 'app');
    await mkdir(join(app, 'node_modules/pkg'), { recursive: true });
    await mkdir(join(app, 'docker'), { recursive: true });
    await writeFile(join(app, 'node_modules/pkg/index.js'), '');
    await writeFile(join(app, 'docker/app.Dockerfile'), 'FROM scratch\n');
    await writeFile(join(app, 'index.js'), '');
    await writeFile(join(app, 'debug.log'), '');
    await writeFile(join(app, 'keep.log'), '');
    await mkdir(join(app, 'docs'), { recursive: true });
    await writeFile(join(app, 'docs/README.md'), '');
    await writeFile(join(app, 'docs/notes.md'), '');
    await writeFile(join(app, '.dockerignore'), 'node_modules\n*.log\n!keep.log\ndocker\n.dockerignore\ndocs\n!docs/README.md\n');
    expect(await packedEntries('app', 'docker/app.Dockerfile')).toEqual(
      ['.dockerignore', 'docker/', 'docker/app.Dockerfile', 'docs/', 'docs/README.md', 'index.js', 'keep.log'].sort(),
    );
  });

  it('names the Dockerfile by its real place when it is a symlink inside the context', async () => {
    agent = await createTestAgent();
    await mkdir(join(agent.workspace, 'app/build'), { recursive: true });
    await writeFile(join(agent.workspace, 'app/build/Dockerfile.real'), 'FROM scratch\n');
    await symlink('build/Dockerfile.real', join(agent.workspace, 'app/Dockerfile'));
    const context = await resolveBuildContext(agent.workspace, '/workspace/app', 'Dockerfile', agent.config.learner);
    expect(context).toMatchObject({ public: '/workspace/app', dockerfile: 'build/Dockerfile.real' });
  });
});
