import { createReadStream } from 'node:fs';
import { request } from 'node:http';
import Docker from 'dockerode';

const PING_TIMEOUT_MS = 3_000;

/** What the supervisor learns about a daemon once it answers. */
export interface DaemonDescription {
  version: string | null;
  rootless: boolean;
}

/** The few Engine API calls the supervisor makes on the daemon it runs. */
export class DaemonClient {
  readonly #docker: Docker;

  constructor(readonly socketPath: string) {
    this.#docker = new Docker({ socketPath });
  }

  /** True when `/_ping` answers OK within a few seconds; never throws. */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ socketPath: this.socketPath, path: '/_ping', timeout: PING_TIMEOUT_MS }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.once('timeout', () => req.destroy());
      req.once('error', () => resolve(false));
      req.end();
    });
  }

  async describe(): Promise<DaemonDescription> {
    const info = await this.#docker.info();
    const options: string[] = info.SecurityOptions ?? [];
    return { version: info.ServerVersion ?? null, rootless: options.some((o) => o.includes('name=rootless')) };
  }

  /** `docker load` of one tarball (plain or gzip); rejects with the daemon's message when it fails. */
  async loadImage(path: string): Promise<string[]> {
    const stream = await this.#docker.loadImage(createReadStream(path), { quiet: true });
    const events = await new Promise<Array<{ stream?: string; error?: string }>>((resolve, reject) => {
      this.#docker.modem.followProgress(stream, (error: Error | null, output: Array<{ stream?: string; error?: string }>) =>
        error ? reject(error) : resolve(output),
      );
    });
    const failed = events.find((e) => e.error);
    if (failed) throw new Error(failed.error);
    return events.flatMap((e) => (e.stream ? [e.stream.trim()] : [])).filter(Boolean);
  }
}
