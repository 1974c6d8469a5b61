import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecResult } from '../../../../shared/schemas/exec.js';
import { createTestAgent, execOnAgent, LEARNER_UID, type TestAgent } from '../../../helpers/test-agent.js';

/** The real uid of each living child of this process (the agent under test) whose argv starts with `argv`. */
function children(argv: string[]): { pid: number; uid: number }[] {
  const wanted = `${argv.join('\0')}\0`;
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith(wanted)) return [];
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)![1]) !== process.pid) return [];
      return [{ pid: Number(entry), uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]) }];
    } catch {
      return []; // it exited while we looked
    }
  });
}

describe('execs started in a spare process made in advance', () => {
  let agent: TestAgent;
  afterEach(async () => agent?.close());

  const exec = (body: object): Promise<ExecResult> => execOnAgent(agent, body);
  // A spare is `learner-exec <uid> <gid>` (no cgroups for the learner on the host).
  const spares = () => children([agent.config.learnerExec, String(LEARNER_UID), String(LEARNER_UID)]);

  it('hands the command its arguments and variables byte for byte, quotes, newlines and all', async () => {
    agent = await createTestAgent();
    const awkward = ["it's", 'two\nlines', '$HOME `id` $(id)', 'back\\slash', ' padded ', '', '"', "'\n'", '-n'];
    for (let round = 0; round < 3; round++) {
      const result = await exec({ command: ['printf', '%s|', ...awkward], env: { AWKWARD: awkward.join('\n') } });
      expect(result).toMatchObject({ exit_code: 0, stdout: `${awkward.join('|')}|`, stderr: '' });
      const printed = await exec({ command: ['printenv', 'AWKWARD'], env: { AWKWARD: awkward.join('\n') } });
      expect(printed.stdout).toBe(`${awkward.join('\n')}\n`);
    }
  });

  it("waits as root, outside the learner's reach, and dies with the agent", async () => {
    agent = await createTestAgent();
    // The first exec makes spares for the next ones; after two more, both spares kept are waiting.
    for (let round = 0; round < 3; round++) expect((await exec({ command: ['id', '-u'] })).stdout).toBe(`${LEARNER_UID}\n`);
    await vi.waitFor(() => expect(spares()).toHaveLength(2));
    expect(spares().map(({ uid }) => uid)).toEqual([0, 0]);
    await agent.close();
    await vi.waitFor(() => expect(spares()).toEqual([]));

  });

  it('starts the next spare once the answer went out, not while the command runs; an exec that took the last one replaces it at once', async () => {
    agent = await createTestAgent();
    for (let round = 0; round < 3; round++) await exec({ command: ['true'] });
    await vi.waitFor(() => expect(spares()).toHaveLength(2));

    // While one exec runs, the other spare waits and no new one has been forked (the fork would delay the answer).
    const running = exec({ command: ['sleep', '2'] });
    await vi.waitFor(() => expect(children(['sleep', '2'])).toHaveLength(1));
    expect(spares()).toHaveLength(1);
    expect(await running).toMatchObject({ exit_code: 0 });
    await vi.waitFor(() => expect(spares()).toHaveLength(2));

    // Two at once take both: the second starts a spare at once, and the agent tops up to two while both run.
    const both = [exec({ command: ['sleep', '3'] }), exec({ command: ['sleep', '3'] })];
    await vi.waitFor(() => expect(children(['sleep', '3'])).toHaveLength(2));
    await vi.waitFor(() => expect(spares()).toHaveLength(2));
    expect(children(['sleep', '3'])).toHaveLength(2);
    for (const result of await Promise.all(both)) expect(result).toMatchObject({ exit_code: 0 });
  });

  it('without learner-exec keeps no spares: each exec starts setpriv and the learner shell itself, same answers', async () => {
    agent = await createTestAgent({ AGENT_LEARNER_EXEC: '/nonexistent/learner-exec' });
    for (let round = 0; round < 3; round++) expect(await exec({ command: ['id', '-u'], env: { A: "it's" } })).toMatchObject({ exit_code: 0, stdout: `${LEARNER_UID}\n` });
    expect(await exec({ command: ['no-such-program-xyz'] })).toMatchObject({ exit_code: 127, stderr: 'no-such-program-xyz: command not found\n' });
    expect(children(['/nonexistent/learner-exec'])).toEqual([]);
  });
});
