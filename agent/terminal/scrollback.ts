/** The last `limit` bytes of a terminal's output, replayed to a client that reattaches. */
export class Scrollback {
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(readonly limit: number) {}

  append(chunk: Buffer): void {
    if (chunk.length >= this.limit) {
      this.#chunks = [chunk.subarray(chunk.length - this.limit)];
      this.#size = this.limit;
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size > this.limit) {
      const first = this.#chunks[0]!;
      const excess = this.#size - this.limit;
      if (first.length <= excess) {
        this.#chunks.shift();
        this.#size -= first.length;
      } else {
        this.#chunks[0] = first.subarray(excess);
        this.#size -= excess;
      }
    }
  }

  /** The kept bytes, starting at a character boundary so the replay never opens with a broken UTF-8 sequence. */
  snapshot(): Buffer {
    const all = Buffer.concat(this.#chunks, this.#size);
    let start = 0;
    while (start < 3 && start < all.length && (all[start]! & 0xc0) === 0x80) start++;
    return all.subarray(start);
  }
}
