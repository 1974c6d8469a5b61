import { PassThrough, Readable } from 'node:stream';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { readLogStream, type LogSource } from '../../../../core/docker/log-demux.js';

// Only its modem's demultiplexer is used: no daemon is asked.
const docker = new Docker({ socketPath: '/nonexistent/docker.sock' });

// One frame of Docker's multiplexed log: stream byte, three zero bytes, big-endian payload length, payload.
const frame = (stream: 1 | 2, text: string): Buffer => {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

async function read(stream: Readable, tty: boolean): Promise<[LogSource, string][]> {
  const pieces: [LogSource, string][] = [];
  await readLogStream(docker, stream, tty, (source, chunk) => {
    const last = pieces.at(-1);
    if (last?.[0] === source) last[1] += chunk.toString();
    else pieces.push([source, chunk.toString()]);
  });
  return pieces;
}

describe('container log streams', () => {
  it('hands over stdout and stderr in the order written, whatever the chunk boundaries', async () => {
    const all = Buffer.concat([frame(1, 'one\n'), frame(2, 'oops\n'), frame(1, 'two\n'), frame(1, 'three')]);
    for (const size of [1, 5, 8, 13, all.length]) {
      const pieces: Buffer[] = [];
      for (let offset = 0; offset < all.length; offset += size) pieces.push(all.subarray(offset, offset + size));
      expect(await read(Readable.from(pieces), false), `chunks of ${size}`).toEqual([
        ['stdout', 'one\n'],
        ['stderr', 'oops\n'],
        ['stdout', 'two\nthree'],
      ]);
    }
  });

  it("hands over a TTY's output as it is, all stdout", async () => {
    const raw = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('text')]);
    expect(await read(Readable.from([raw]), true)).toEqual([['stdout', raw.toString()]]);
  });

  it('fails when the stream breaks off', async () => {
    const stream = new PassThrough();
    const reading = read(stream, false);
    stream.write(frame(1, 'partial'));
    stream.destroy(new Error('connection reset'));
    await expect(reading).rejects.toThrow('connection reset');
  });
});
