import { Readable } from 'node:stream';
import { constants, createGzip, gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';

/** One entry of a test archive: a header (name, type, linkname, mode…) and an optional body. */
export interface TestEntry extends Partial<Header> {
  name: string;
  body?: string | Buffer;
}

/** Builds a .tar (or with `gzip`, a .tar.gz) holding exactly `entries`, as written, with no checks of any kind. */
export async function buildTar(entries: TestEntry[], gzip = false): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    tar.on('data', (chunk) => void chunks.push(chunk as Buffer));
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (header.type === 'file' || header.type === undefined) tar.entry(header, body ?? '', callback);
      else tar.entry(header, callback).end(undefined);
    });
  }
  tar.finalize();
  await done;
  const raw = Buffer.concat(chunks);
  return gzip ? gzipSync(raw) : raw;
}

/** A .tar.gz of one file that claims `bytes` of zeros: a few KB that unpack to `bytes`. */
export function buildBomb(bytes: number): Readable {
  const tar = pack();
  const zeros = Buffer.alloc(1024 * 1024);
  const entry = tar.entry({ name: 'bomb.bin', size: bytes }, () => {});
  void (async () => {
    for (let left = bytes; left > 0; left -= zeros.length) {
      if (!entry.write(left >= zeros.length ? zeros : zeros.subarray(0, left))) await new Promise<void>((r) => entry.once('drain', () => r()));
    }
    entry.end(undefined);
    tar.finalize();
  })();
  return Readable.from(tar).pipe(createGzipFast());
}

function createGzipFast() {
  return createGzip({ level: constants.Z_BEST_SPEED });
}

/** The attacks every extraction must refuse: name → entries. `outside` is a sibling folder name the links aim at. */
export function hostileArchives(outside: string): Record<string, TestEntry[]> {
  return {
    'an absolute name': [{ name: `/tmp/${outside}/abs.txt`, body: 'x' }],
    'a .. name': [{ name: `../${outside}/dotdot.txt`, body: 'x' }],
    'a .. inside a name': [{ name: `a/../../${outside}/inner.txt`, body: 'x' }],
    'a symlink pointing out': [{ name: 'passwd', type: 'symlink', linkname: '/etc/passwd' }],
    'a symlink out followed by an entry through it': [
      { name: 'out', type: 'symlink', linkname: `../${outside}` },
      { name: 'out/through.txt', body: 'x' },
    ],
    'an absolute symlink followed by an entry through it': [
      { name: 'abs', type: 'symlink', linkname: `/tmp` },
      { name: 'abs/through.txt', body: 'x' },
    ],
    'a hard link to a file outside': [{ name: 'hard', type: 'link', linkname: `../${outside}/secret.txt` }],
    'a hard link to a file that was there before': [{ name: 'hard', type: 'link', linkname: 'existing.txt' }],
    'a symlink inside, then an entry through it': [
      { name: 'real', type: 'directory' },
      { name: 'inside', type: 'symlink', linkname: 'real' },
      { name: 'inside/through.txt', body: 'x' },
    ],
    'a character device': [{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }],
    'a block device': [{ name: 'disk', type: 'block-device', devmajor: 8, devminor: 0 }],
    'a FIFO': [{ name: 'pipe', type: 'fifo' }],
    'a set-user-id file': [{ name: 'suid', mode: 0o4755, body: '#!/bin/sh\n' }],
    'a set-group-id folder': [{ name: 'sgid', type: 'directory', mode: 0o2755 }],
  };
}
