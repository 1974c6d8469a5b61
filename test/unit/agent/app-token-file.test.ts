import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestAgent, type TestAgent } from '../../helpers/test-agent.js';

// The agent side of a warm pool claim: the controller rewrites the token file and the agent follows it.
describe('agent token handed over through its token file', () => {
  let agent: TestAgent | undefined;
  let dir: string;
  afterEach(async () => {
    await agent?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const FIRST = 'first-token-0123456789abcdef';
  const SECOND = 'second-token-0123456789abcdef';
  const status = async (token: string): Promise<number> =>
    (await agent!.app.inject({ url: '/health', headers: { authorization: `Bearer ${token}` } })).statusCode;

  it('accepts the new token once the file holds it, and from then on refuses the old one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-token-'));
    const file = join(dir, 'token');
    await writeFile(file, `${FIRST}\n`);
    agent = await createTestAgent({ AGENT_TOKEN_FILE: file });
    expect(await status(FIRST)).toBe(200);
    await writeFile(file, SECOND);
    expect(await status(SECOND)).toBe(200);
    expect(await status(FIRST)).toBe(401);
    expect(await status('')).toBe(401);
  });

  it('keeps its token when the file is gone or holds something too short to be a token', async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-token-'));
    const file = join(dir, 'token');
    await writeFile(file, FIRST);
    agent = await createTestAgent({ AGENT_TOKEN_FILE: file });
    await writeFile(file, 'short');
    expect(await status('short')).toBe(401);
    expect(await status(FIRST)).toBe(200);
    await rm(file);
    expect(await status(SECOND)).toBe(401);
    expect(await status(FIRST)).toBe(200);
  });

  it('never changes a token given in AGENT_TOKEN', async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-token-'));
    const file = join(dir, 'token');
    await writeFile(file, SECOND);
    agent = await createTestAgent({ AGENT_TOKEN: FIRST, AGENT_TOKEN_FILE: file });
    expect(await status(SECOND)).toBe(401);
    expect(await status(FIRST)).toBe(200);
  });
});
