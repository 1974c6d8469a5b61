import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages, startE2EController, type E2EController } from '../../helpers/controller-e2e.js';

/**
 * Every ```bash block of the README and of docs/*.md runs here, in order per page, as a reader pasting them into
 * one shell would: variables set in one block are there in the next. The pages talk to http://localhost:8080 with
 * $RUNNER_API_TOKEN; the test points that origin at a controller of its own. ```sh blocks (long-running servers,
 * a fresh machine) are not run. A block fails on a non-zero exit and, since curl here is curl --fail-with-body, on
 * an HTTP error.
 */
const REPO = new URL('../../..', import.meta.url).pathname;
const ORIGIN = 'http://localhost:8080';
const BLOCK_TIMEOUT_MS = 240_000;
// What the pages make outside the controller: their own last blocks remove the Docker objects (here too, should a
// page fail midway); the local files they leave for a reader to look at go here.
const MADE_BY_HAND = `
docker rm -f mysession; docker volume rm mysession-docker; docker network rm mysession-net
rm -rf /run/runner-sessions/mysession /tmp/agent-ws /tmp/agent.log /tmp/model.bin /tmp/model-copy.bin /tmp/watch-events.txt
`;

interface Block {
  line: number;
  code: string;
}

function extractBashBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```bash') continue;
    const start = i + 1;
    while (i + 1 < lines.length && lines[i + 1] !== '```') i++;
    blocks.push({ line: start, code: lines.slice(start, i + 1).join('\n') });
    i++;
  }
  return blocks;
}

// Runs before each block: strict mode, the failing command named, the previous blocks' variables, a checking curl.
const PRELUDE = `
set -eE -o pipefail
__baseline=" $(compgen -v | tr '\\n' ' ') "
__save() { for v in $(compgen -v); do case "$__baseline" in *" $v "*) ;; *) declare -p "$v" 2>/dev/null ;; esac; done >>"$DOCS_STATE"; }
trap '__status=$?; echo "failed (exit $__status) at line $((LINENO - __first)): $BASH_COMMAND" >&2' ERR
trap __save EXIT
if [ -f "$DOCS_STATE" ]; then source "$DOCS_STATE"; fi
shopt -s expand_aliases
alias curl='curl --fail-with-body --silent --show-error'
__first=$LINENO
`;

interface BlockResult {
  code: number | null;
  output: string;
  pid: number;
}

function runBlock(script: string, env: Record<string, string>): Promise<BlockResult> {
  return new Promise((resolve, reject) => {
    // Its own process group, so whatever a block leaves running in the background can be ended with the page.
    const child = spawn('bash', ['-c', `${PRELUDE}\n${script}`], { cwd: REPO, env: { ...process.env, ...env }, detached: true });
    let output = '';
    const collect = (d: Buffer) => (output += d.toString());
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), BLOCK_TIMEOUT_MS);
    child.once('error', reject);
    // 'exit', not 'close': a server a block starts in the background keeps the pipes open.
    child.once('exit', (code) => {
      clearTimeout(timer);
      setTimeout(() => resolve({ code, output, pid: child.pid! }), 100);
    });
  });
}

const pages = ['README.md', ...(await readdir(join(REPO, 'docs'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

describe.sequential('every shell example in the README and docs runs as written', () => {
  let controller: E2EController;
  const token = randomBytes(24).toString('hex');

  beforeAll(async () => {
    await buildImages();
    // A warm pool of one, as docs/operations.md shows it: each page's first session is claimed from it.
    controller = await startE2EController({ RUNNER_API_TOKEN: token, WARM_POOL_SIZE: '1' });
  });

  afterAll(async () => {
    await controller?.destroy();
  });

  it.each(pages)('%s', async (page) => {
    const blocks = extractBashBlocks(await readFile(join(REPO, page), 'utf8'));
    const state = await mkdtemp(join(tmpdir(), 'docs-examples-'));
    const groups: number[] = [];
    try {
      for (const [index, block] of blocks.entries()) {
        const script = block.code.replaceAll(ORIGIN, controller.url);
        const result = await runBlock(script, { RUNNER_API_TOKEN: token, DOCS_STATE: join(state, 'variables.sh') });
        groups.push(result.pid);
        if (result.code !== 0) {
          const failed = /failed \(exit (\d+)\) at line (\d+): (.*)$/m.exec(result.output);
          const where = failed ? `line ${block.line + Number(failed[2]) - 1}, exit ${failed[1]}: ${failed[3]}` : `exit ${result.code}`;
          expect.fail(`${page}, block ${index + 1} (from line ${block.line + 1}), ${where}\n--- output ---\n${result.output.slice(-3000)}`);
        }
      }
    } finally {
      for (const pid of groups) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // The block's group has ended already.
        }
      }
      await rm(state, { recursive: true, force: true });
      await runBlock(`set +e; { ${MADE_BY_HAND} } >/dev/null 2>&1; true`, { DOCS_STATE: '/dev/null' });
    }
    // The pages end what they start: no session of theirs is left once a page is done.
    const { body } = await controller.request('GET', '/sessions');
    expect(body.sessions, `${page} leaves sessions behind`).toEqual([]);
  }, 900_000);
});
