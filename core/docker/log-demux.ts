import { Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type Docker from 'dockerode';

/** Which of a container's output streams a piece of its log was written to. */
export type LogSource = 'stdout' | 'stderr';

/**
 * Reads a container's log stream to its end, handing over each piece, in the order written, with the stream it came
 * from. Without a TTY Docker interleaves stdout and stderr in frames, which dockerode's demuxStream takes apart; a
 * TTY's output is one plain stream.
 */
export async function readLogStream(
  docker: Docker,
  stream: Readable,
  tty: boolean,
  onChunk: (source: LogSource, chunk: Buffer) => void,
): Promise<void> {
  // Only the reading side: an exec's attached stream is a socket whose writing side stays open.
  const ended = finished(stream, { writable: false });
  if (tty) stream.on('data', (chunk: Buffer) => onChunk('stdout', chunk));
  else docker.modem.demuxStream(stream, sinkOf('stdout', onChunk), sinkOf('stderr', onChunk));
  await ended;
}

// Each write is handed over synchronously, so the order across both sinks is the order of the frames.
function sinkOf(source: LogSource, onChunk: (source: LogSource, chunk: Buffer) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      onChunk(source, chunk);
      done();
    },
  });
}
