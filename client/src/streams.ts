/** Text lines of a byte stream, split on `\n` (a last line without one included). */
export async function* readLines(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        yield buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
      }
    }
    buffered += decoder.decode();
    if (buffered !== '') yield buffered;
  } finally {
    signal?.removeEventListener('abort', cancel);
    // Leaving the loop early (break, return, throw) ends the request.
    cancel();
  }
}

/** One JSON value per line of an `application/x-ndjson` body. */
export async function* readNdjson<T>(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<T> {
  for await (const line of readLines(body, signal)) {
    if (line.trim() !== '') yield JSON.parse(line) as T;
  }
}

/** The JSON `data` of each Server-Sent Event of a `text/event-stream` body; comments (keepalives) are skipped. */
export async function* readEventData<T>(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<T> {
  let data: string[] = [];
  for await (const raw of readLines(body, signal)) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') {
      if (data.length > 0) yield JSON.parse(data.join('\n')) as T;
      data = [];
    } else if (line.startsWith('data:')) {
      data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
  }
}
