import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { BoundedLines, readLogLines } from '../../../../agent/docker/log-lines.js';

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
