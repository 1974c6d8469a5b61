import { lstatSync } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-fs';
import { Dockerignore } from '../docker/dockerignore.js';

/*
 * Runs as the learner (learner-tar.ts starts it): whatever a learner swaps for a symbolic link while this walks, the
 * kernel checks every open against the learner's own rights, so nothing the learner could not read gets packed.
 * Reads one JSON request on stdin, writes the tar to stdout; a failure goes to stderr with exit code 1.
 */

/** What to pack: `dir`'s contents, named relative to it. */
export interface PackRequest {
  op: 'pack';
  dir: string;
  /** `.dockerignore` rules applied while walking; the paths of `keep` (and their folders) stay in whatever they say. */
  dockerignore?: string;
  keep?: string[];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function ignoreFor(request: PackRequest): ((absolute: string) => boolean) | undefined {
  if (request.dockerignore === undefined) return undefined;
  const rules = new Dockerignore(request.dockerignore);
  const keep = request.keep ?? [];
  return (absolute) => {
    const relative = posix.relative(request.dir, absolute);
    if (keep.some((kept) => kept === relative || kept.startsWith(`${relative}/`))) return false;
    if (!rules.excludes(relative)) return false;
    // Skipping a folder skips all of it: keep walking into it when a `!` line may bring something back.
    return !(rules.mayReinclude(relative) && isFolder(absolute));
  };
}

function isFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const request = JSON.parse(await readStdin()) as PackRequest;
  if (request.op !== 'pack') throw new Error(`unknown operation ${String(request.op)}`);
  // Symbolic links go in as links, never followed; sockets, fifos and devices are skipped (strict: false).
  await pipeline(pack(request.dir, { dereference: false, strict: false, ignore: ignoreFor(request) }), process.stdout);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
