import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { FastifyBaseLogger } from 'fastify';

const RECONNECT_MS = 1_000;

/**
 * Calls `onStart` with the id of every container with `labels` the engine starts from now on, also those it
 * restarts by itself (a restart policy), for the life of the process: the stream is opened again when the engine
 * goes away, and never keeps the process alive.
 */
export function watchContainerStarts(docker: Docker, labels: string[], onStart: (id: string) => Promise<void>, log: FastifyBaseLogger): void {
  const watch = async (): Promise<void> => {
    for (;;) {
      try {
        const stream = await docker.getEvents({ filters: { type: ['container'], event: ['start'], label: labels } });
        (stream as IncomingMessage).socket?.unref();
        for await (const line of createInterface({ input: stream })) {
          const id = parseStart(line);
          if (id) await onStart(id);
        }
      } catch (error) {
        log.debug({ err: error }, 'the engine event stream ended; opening it again');
      }
      await sleep(RECONNECT_MS, undefined, { ref: false });
    }
  };
  void watch();
}

// One event per line: `{"Type":"container","Action":"start","id":"…",…}`.
function parseStart(line: string): string | undefined {
  try {
    const event = JSON.parse(line) as { Type?: string; Action?: string; id?: string };
    return event.Type === 'container' && event.Action === 'start' && event.id ? event.id : undefined;
  } catch {
    return undefined;
  }
}
