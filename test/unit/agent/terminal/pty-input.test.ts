import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type IPty } from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { PtyInput } from '../../../../agent/terminal/pty-input.js';

describe('pty input', () => {
  let dir: string | undefined;
  let pty: IPty | undefined;
  afterEach(async () => {
    pty?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('holds input the shell does not read yet, says when too much waits and when it drained, and loses nothing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pty-input-'));
    const out = join(dir, 'out');
    // Raw mode passes every byte as it is; the shell reads nothing for a second, so the pty fills up.
    pty = spawn('/bin/sh', ['-c', `stty raw -echo; sleep 1; head -c ${4 * 1024 * 1024} >${out}; echo done`], { cols: 80, rows: 24 });
    const exited = new Promise<void>((resolve) => pty!.onExit(() => resolve()));
    let output = '';
    pty.onData((data) => (output += data));
    const events: string[] = [];
    let drained!: () => void;
    const drainedOnce = new Promise<void>((resolve) => (drained = resolve));
    const input = new PtyInput((pty as IPty & { fd: number }).fd, {
      highWaterBytes: 1024 * 1024,
      lowWaterBytes: 256 * 1024,
      onFull: () => events.push('full'),
      onDrained: () => {
        events.push('drained');
        drained();
      },
    });
    const data = Buffer.from(Array.from({ length: 4 * 1024 * 1024 }, (_, i) => (i * 7) % 251));
    for (let offset = 0; offset < data.length; offset += 64 * 1024) input.write(data.subarray(offset, offset + 64 * 1024));
    expect(events).toEqual(['full']);
    expect(input.queuedBytes).toBeGreaterThan(1024 * 1024);
    await drainedOnce;
    await exited;
    expect(events).toEqual(['full', 'drained']);
    expect(input.queuedBytes).toBe(0);
    expect(output).toContain('done');
    const written = await readFile(out);
    expect(createHash('sha256').update(written).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });
});
