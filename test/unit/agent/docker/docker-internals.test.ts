import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveBuildContext, packBuildContext } from '../../../../agent/docker/build-context.js';
import { Dockerignore } from '../../../../agent/docker/dockerignore.js';
import { BoundedLines, readLogLines } from '../../../../agent/docker/log-lines.js';
import { parsePortSpec } from '../../../../shared/schemas/docker.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

const run = promisify(execFile);

describe('port specs', () => {
  it.each([
    ['8080:80', { host_ip: '', host_port: '8080', container_port: 80, protocol: 'tcp' }],
    ['127.0.0.1:8081:80', { host_ip: '127.0.0.1', host_port: '8081', container_port: 80, protocol: 'tcp' }],
    ['9000:9000/udp', { host_ip: '', host_port: '9000', container_port: 9000, protocol: 'udp' }],
    ['80', { host_ip: '', host_port: '', container_port: 80, protocol: 'tcp' }],
    ['127.0.0.1::80', { host_ip: '127.0.0.1', host_port: '', container_port: 80, protocol: 'tcp' }],
    ['[::1]:8080:80/sctp', { host_ip: '::1', host_port: '8080', container_port: 80, protocol: 'sctp' }],
    ['65535:1', { host_ip: '', host_port: '65535', container_port: 1, protocol: 'tcp' }],
  ])('reads %s', (spec, expected) => {
    expect(parsePortSpec(spec)).toEqual(expected);
  });

  it.each(['', ':80', '8080:', '0:80', '80:0', '65536:80', '-1:80', '08080:80', '1.2.3:80:80', '[zz]:80:80', '80/icmp', '80:80:80:80', ' 80', '8000-8010'])(
    'refuses %j',
    (spec) => {
      expect(parsePortSpec(spec)).toBeUndefined();
    },
  );
});

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

describe('container logs', () => {
  // Only its modem's demultiplexer is used: no daemon is asked.
  const docker = new Docker({ socketPath: '/nonexistent/docker.sock' });
  const frame = (stream: 1 | 2, text: string): Buffer => {
    const payload = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = stream;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  // The log stream cut into pieces of `size` bytes, as a socket may deliver it.
  const chunked = (all: Buffer, size: number): Readable => {
    const pieces: Buffer[] = [];
    for (let offset = 0; offset < all.length; offset += size) pieces.push(all.subarray(offset, offset + size));
    return Readable.from(pieces);
  };

  it('interleaves stdout and stderr lines in order, whatever the chunk boundaries', async () => {
    const all = Buffer.concat([frame(1, 'one\ntw'), frame(2, 'oops\n'), frame(1, 'o\nthré'), frame(1, 'e')]);
    for (const size of [1, 3, 7, 9, all.length]) {
      const lines = new BoundedLines(1024);
      await readLogLines(docker, chunked(all, size), false, lines);
      expect(lines.lines(), `chunks of ${size}`).toEqual(['one', 'oops', 'two', 'thrée']);
    }
  });

  it('reads the output of a TTY as it is', async () => {
    const lines = new BoundedLines(1024);
    await readLogLines(docker, chunked(Buffer.from('hello\r\nworld'), 4), true, lines);
    expect(lines.lines()).toEqual(['hello', 'world']);
  });

  it('keeps the newest lines within its budget and says how many it dropped', () => {
    const lines = new BoundedLines(20);
    lines.add(['aaaa', 'bbbb', 'cccc', 'dddd', 'eeee', 'ffff']);
    expect(lines.lines()).toEqual(['[… 2 earlier lines dropped]', 'cccc', 'dddd', 'eeee', 'ffff']);
  });
});
