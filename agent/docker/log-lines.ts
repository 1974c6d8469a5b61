import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { readLogStream } from '../../core/docker/log-demux.js';

/** Cuts text that arrives in pieces into lines; a UTF-8 character split across pieces is kept whole. */
export class LineSplitter {
  #decoder = new StringDecoder('utf8');
  #partial = '';

  /** Adds a piece; returns the lines it completed. */
  push(chunk: Buffer | string): string[] {
    const text = this.#partial + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk));
    const parts = text.split('\n');
    this.#partial = parts.pop()!;
    return parts.map(stripCarriageReturn);
  }

  /** The last line when the text did not end with a newline. */
  end(): string[] {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    return rest ? [stripCarriageReturn(rest)] : [];
  }
}

const stripCarriageReturn = (line: string): string => (line.endsWith('\r') ? line.slice(0, -1) : line);

/** Keeps the newest lines within a byte budget, so a chatty build or container cannot fill the agent's memory. */
export class BoundedLines {
  #lines: string[] = [];
  #bytes = 0;
  #dropped = 0;

  constructor(private readonly limitBytes: number) {}

  add(lines: string[]): void {
    for (const whole of lines) {
      // One endless line (output without newlines) must not escape the budget either.
      const line = whole.length > this.limitBytes ? `${whole.slice(0, this.limitBytes)}…` : whole;
      this.#lines.push(line);
      this.#bytes += Buffer.byteLength(line) + 1;
    }
    let head = 0;
    while (this.#bytes > this.limitBytes && head < this.#lines.length - 1) {
      this.#bytes -= Buffer.byteLength(this.#lines[head]!) + 1;
      head += 1;
    }
    if (head > 0) {
      this.#lines.splice(0, head);
      this.#dropped += head;
    }
  }

  /** The kept lines, after a marker saying how many older ones were dropped. */
  lines(): string[] {
    return this.#dropped ? [`[… ${this.#dropped} earlier lines dropped]`, ...this.#lines] : [...this.#lines];
  }
}

/** Reads a container's log stream to its end into lines, in the order they were written to stdout and stderr. */
export async function readLogLines(docker: Docker, stream: Readable, tty: boolean, into: BoundedLines): Promise<void> {
  const splitters = { stdout: new LineSplitter(), stderr: new LineSplitter() };
  await readLogStream(docker, stream, tty, (source, chunk) => into.add(splitters[source].push(chunk)));
  into.add([...splitters.stdout.end(), ...splitters.stderr.end()]);
}
