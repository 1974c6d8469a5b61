import { appendFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { AgentRoute } from '../../../../shared/routes.js';
import type { WatchFrame } from '../../../../shared/schemas/watch.js';
import { createTestAgent, type TestAgent } from '../../../helpers/test-agent.js';

/** Every frame a subscriber received so far, and a way to wait for one. */
interface Subscriber {
  frames: WatchFrame[];
  /** Extra SSE text that is not an event (comments). */
  comments: string[];
  close(): void;
}

async function waitForFrame(sub: Subscriber, expected: Partial<WatchFrame>): Promise<void> {
  await vi.waitFor(() => expect(sub.frames).toContainEqual(expect.objectContaining(expected)), { timeout: 10_000, interval: 20 });
}

describe('watch', () => {
  let agent: TestAgent;
  let base: string;
  const subscribers: Subscriber[] = [];

  async function start(env: Record<string, string> = {}): Promise<void> {
    agent = await createTestAgent(env);
    base = await agent.app.listen({ port: 0, host: '127.0.0.1' });
  }

  async function subscribeWs(): Promise<Subscriber> {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${AgentRoute.watchWs}`);
    const sub: Subscriber = { frames: [], comments: [], close: () => ws.terminate() };
    ws.on('message', (data: Buffer) => sub.frames.push(JSON.parse(data.toString())));
    subscribers.push(sub);
    await waitForFrame(sub, { type: 'ready' });
    return sub;
  }

  async function subscribeSse(): Promise<Subscriber> {
    const controller = new AbortController();
    const res = await fetch(`${base}${AgentRoute.watchSse}`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const sub: Subscriber = { frames: [], comments: [], close: () => controller.abort() };
    subscribers.push(sub);
    void (async () => {
      let buffered = '';
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body!) {
          buffered += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            const message = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            if (message.startsWith('data: ')) sub.frames.push(JSON.parse(message.slice(6)));
            else sub.comments.push(message);
          }
        }
      } catch {
        // Aborted by close().
      }
    })();
    await waitForFrame(sub, { type: 'ready' });
    return sub;
  }

  afterEach(async () => {
    for (const sub of subscribers.splice(0)) sub.close();
    await agent?.close();
  });

  /** Creates, changes and deletes a folder and a file, checking each event arrives before the next step. */
  async function exerciseWorkspace(sub: Subscriber): Promise<void> {
    await mkdir(join(agent.workspace, 'src'));
    await waitForFrame(sub, { type: 'created', path: 'src', kind: 'directory' });
    await writeFile(join(agent.workspace, 'src/main.py'), 'print(1)\n');
    await waitForFrame(sub, { type: 'created', path: 'src/main.py', kind: 'file' });
    await appendFile(join(agent.workspace, 'src/main.py'), 'print(2)\n');
    await waitForFrame(sub, { type: 'changed', path: 'src/main.py', kind: 'file' });
    await rm(join(agent.workspace, 'src/main.py'));
    await waitForFrame(sub, { type: 'deleted', path: 'src/main.py', kind: 'file' });
    await rm(join(agent.workspace, 'src'), { recursive: true });
    await waitForFrame(sub, { type: 'deleted', path: 'src', kind: 'directory' });
  }

  it('streams created, changed and deleted files and folders over a WebSocket', async () => {
    await start();
    await exerciseWorkspace(await subscribeWs());
  });

  it('streams the same events as Server-Sent Events, with keepalive comments', async () => {
    await start({ AGENT_KEEPALIVE_SECONDS: '1' });
    const sub = await subscribeSse();
    await exerciseWorkspace(sub);
    await vi.waitFor(() => expect(sub.comments).toContain(': keepalive'), { timeout: 5_000, interval: 50 });
  });

  it('tells every subscriber, over either transport, and keeps going after one leaves', async () => {
    await start();
    const ws = await subscribeWs();
    const sse = await subscribeSse();
    await writeFile(join(agent.workspace, 'both.txt'), 'x');
    await waitForFrame(ws, { type: 'created', path: 'both.txt' });
    await waitForFrame(sse, { type: 'created', path: 'both.txt' });

    ws.close();
    await writeFile(join(agent.workspace, 'after.txt'), 'x');
    await waitForFrame(sse, { type: 'created', path: 'after.txt' });
  });

  it('does not report existing files, nor follow a symlink out of the workspace, nor report inside node_modules', async () => {
    await start();
    await writeFile(join(agent.workspace, 'old.txt'), 'already here');
    await symlink(agent.outside, join(agent.workspace, 'escape'));
    const sub = await subscribeWs();
    await writeFile(join(agent.outside, 'secret.txt'), 'outside');
    await mkdir(join(agent.workspace, 'node_modules'));
    await waitForFrame(sub, { type: 'created', path: 'node_modules', kind: 'directory' });
    await writeFile(join(agent.workspace, 'node_modules/dep.js'), '');
    await writeFile(join(agent.workspace, 'marker.txt'), '');
    await waitForFrame(sub, { type: 'created', path: 'marker.txt' });
    const paths = sub.frames.flatMap((frame) => ('path' in frame ? [frame.path] : []));
    expect(paths).toEqual(['node_modules', 'marker.txt']);
  });

  it('reports a file written through the files API under its own name only, never its temporary file', async () => {
    await start();
    const sub = await subscribeWs();
    const put = await fetch(`${base}/files/workspace/app.py`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'print(1)\n' }),
    });
    expect(put.status).toBe(201);
    await writeFile(join(agent.workspace, 'marker.txt'), '');
    await waitForFrame(sub, { type: 'created', path: 'marker.txt' });
    const paths = sub.frames.flatMap((frame) => ('path' in frame ? [frame.path] : []));
    expect(paths).toEqual(['app.py', 'marker.txt']);
  });
});
