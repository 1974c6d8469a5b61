import { StringDecoder } from 'node:string_decoder';

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

/**
 * Splits the log stream of a container into lines in the order they were written. Without a TTY, Docker
 * multiplexes stdout and stderr in frames (1 byte stream, 3 zero bytes, 4 bytes big-endian length, payload),
 * which may arrive cut anywhere; a TTY's output is plain.
 */
export class LogDemultiplexer {
  #stdout = new LineSplitter();
  #stderr = new LineSplitter();
  #header = Buffer.alloc(0);
  #stream = 1;
  #remaining = 0;

  constructor(
    private readonly tty: boolean,
    private readonly into: BoundedLines,
  ) {}

  push(chunk: Buffer): void {
    if (this.tty) {
      this.into.add(this.#stdout.push(chunk));
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === 0) {
        const needed = 8 - this.#header.length;
        this.#header = Buffer.concat([this.#header, chunk.subarray(offset, offset + needed)]);
        offset += needed;
        if (this.#header.length < 8) return;
        this.#stream = this.#header[0]!;
        this.#remaining = this.#header.readUInt32BE(4);
        this.#header = Buffer.alloc(0);
        continue;
      }
      const payload = chunk.subarray(offset, offset + this.#remaining);
      offset += payload.length;
      this.#remaining -= payload.length;
      this.into.add((this.#stream === 2 ? this.#stderr : this.#stdout).push(payload));
    }
  }

  end(): void {
    this.into.add([...this.#stdout.end(), ...this.#stderr.end()]);
  }
}
