import { write } from 'node:fs';

// The kernel has no event for room in a pty's input: a full one is tried again after a pause that grows to this.
const RETRY_MIN_MS = 1;
const RETRY_MAX_MS = 16;

export interface PtyInputOptions {
  /** Queued input above this calls `onFull` (the caller stops reading its clients). */
  highWaterBytes: number;
  /** Once a full queue is down to this, `onDrained` is called. */
  lowWaterBytes: number;
  onFull: () => void;
  onDrained: () => void;
}

/**
 * Writes input to a pty's master descriptor in order, and says when too much of it waits: node-pty's own write
 * queues without a limit and without telling. Retries a full pty on a timer that backs off instead of spinning.
 */
export class PtyInput {
  readonly #fd: number;
  readonly #options: PtyInputOptions;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  #full = false;
  #closed = false;
  #holding = false;
  #retryMs = RETRY_MIN_MS;
  #timer: NodeJS.Timeout | undefined;

  constructor(fd: number, options: PtyInputOptions) {
    this.#fd = fd;
    this.#options = options;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Between `onFull` and `onDrained`: the clients are not read. */
  get full(): boolean {
    return this.#full;
  }

  write(data: Buffer): void {
    if (this.#closed || data.length === 0) return;
    this.#queue.push(data);
    this.#queuedBytes += data.length;
    if (!this.#full && this.#queuedBytes > this.#options.highWaterBytes) {
      this.#full = true;
      this.#options.onFull();
    }
    if (!this.#writing && !this.#holding) this.#writeNext();
  }

  /** Queues input without writing it until `release()` (the shell is not ready for it yet). */
  hold(): void {
    this.#holding = true;
  }

  release(): void {
    this.#holding = false;
    if (!this.#writing) this.#writeNext();
  }

  /** Drops what is still queued; the pty is gone (its descriptor may soon be another file's). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #writeNext(): void {
    const head = this.#queue[0];
    if (this.#closed || !head) {
      this.#writing = false;
      return;
    }
    this.#writing = true;
    write(this.#fd, head, 0, head.length, null, (error, written) => {
      if (this.#closed) return;
      if (error) {
        if (error.code !== 'EAGAIN') return this.close(); // EIO, EBADF: the shell and its pty are gone
        this.#timer = setTimeout(() => this.#writeNext(), this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
        return;
      }
      this.#retryMs = RETRY_MIN_MS;
      this.#queuedBytes -= written;
      if (written === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(written);
      if (this.#full && this.#queuedBytes <= this.#options.lowWaterBytes) {
        this.#full = false;
        this.#options.onDrained();
      }
      this.#writeNext();
    });
  }
}
