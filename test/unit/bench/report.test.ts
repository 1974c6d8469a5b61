import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareRow, missingRow, writeLatestPage, type BenchReport } from '../../bench/report.js';

const report: BenchReport = {
  profile: 'full',
  started_at: '2026-12-03T08:00:00.000Z',
  finished_at: '2026-12-03T08:09:00.000Z',
  environment: { cpus: 2, memory_mib: 24105, docker_server: '20.10.24+dfsg1', node: 'v20.19.5', loadavg_at_start: [0.42], git_commit: 'abc1234', git_dirty: false },
  rows: [
    compareRow('exec `true`', 'ms', 4.2, 'docker exec', 60, { target: { text: '≤ 0.2× docker exec', check: (v, b) => v <= 0.2 * b } }),
    missingRow('small image build', 'ms', 'error: daemon gone'),
  ],
  samples: {},
  extras: {},
  errors: ['small image build: daemon gone\n    at stack'],
};

describe("the bench's docs page", () => {
  it('says when, on what and with which command, then the table', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bench-page-'));
    try {
      const path = join(dir, 'docs', 'benchmarks-latest.md');
      await writeLatestPage(path, report, 'npm run bench');
      const page = await readFile(path, 'utf8');
      expect(page).toContain('Written by `npm run bench`');
      expect(page).toContain('**When:** 2026-12-03T08:00:00.000Z to 2026-12-03T08:09:00.000Z');
      expect(page).toContain('**On what:** 2 CPUs, 24105 MiB RAM, Docker 20.10.24+dfsg1, Node v20.19.5, load average 0.4 at start');
      expect(page).toContain('**Code:** commit abc1234\n');
      expect(page).toMatch(/^\| exec `true` +\| 4\.20 ms +\| 60\.0 ms  docker exec +\| 0\.07× +\| ≤ 0\.2× docker exec +\| pass +\|$/m);
      expect(page).toMatch(/^\| small image build +\| error: daemon gone .*\| ERROR +\|$/m);
      expect(page).toContain('- small image build: daemon gone\n');
      expect(page).not.toContain('at stack');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
