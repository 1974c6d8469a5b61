import { REFUSED_EXIT_CODE, type ArchiveRequest } from './archive-protocol.js';
import { ArchiveRefusal, extractTar } from './tar-jail.js';

/*
 * Runs as the learner (archive-as-learner.ts starts it), so the kernel checks every file it writes against the
 * learner's own rights, whatever the learner swaps for a symbolic link meanwhile. The request is argv[2] (JSON); it
 * reads a .tar or .tar.gz on stdin and prints its summary. A refusal is one JSON line `{code, message}` on stderr
 * with exit code 2; any other failure its message with exit code 1.
 */

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '{}') as ArchiveRequest;
  if (request.op === 'extract') {
    const summary = await extractTar(process.stdin, request.dir, { maxBytes: request.maxBytes, maxEntries: request.maxEntries });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  throw new Error('unknown operation');
}

main().catch((error: unknown) => {
  if (error instanceof ArchiveRefusal) {
    process.stderr.write(`${JSON.stringify({ code: error.reason, message: error.message })}\n`);
    process.exitCode = REFUSED_EXIT_CODE;
    return;
  }
  process.stderr.write(`${(error as Error).message}\n`);
  process.exitCode = 1;
});
