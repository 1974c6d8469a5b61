import { constants } from 'node:fs';
import { link, lstat, mkdir, open, symlink, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { walkFoldersNoFollow } from '../files/no-follow-folder.js';

// An entry's content as tar-stream hands it over (a streamx stream).
type EntryStream = AsyncIterable<unknown> & { resume(): unknown };

/*
 * Extraction that can only write below its destination: no dependency on zod or the rest of the agent, because it
 * runs in the worker that the agent starts as the learner (archive-worker.ts).
 */

/** Why an archive was refused; `reason` becomes the error code the client sees. */
export class ArchiveRefusal extends Error {
  override readonly name = 'ArchiveRefusal';

  constructor(
    readonly reason: 'ARCHIVE_REFUSED' | 'ARCHIVE_TOO_LARGE' | 'ARCHIVE_INVALID',
    message: string,
  ) {
    super(message);
  }
}

export interface ExtractLimits {
  /** Most bytes the archive may unpack to (decompressed tar stream, headers included). */
  maxBytes: number;
  /** Most entries the archive may hold. */
  maxEntries: number;
}

export interface ExtractSummary {
  entries: number;
  bytes: number;
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_DIRECTORY } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const GZIP_MAGIC = [0x1f, 0x8b];

// Names an entry through its folder's descriptor: never through a symbolic link, whoever made it.
const at = (dir: FileHandle, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

/**
 * Extracts a `.tar` or `.tar.gz` stream into `dest` (an existing folder). Refuses absolute names, `..`, links
 * that point out of `dest`, anything through a symbolic link, devices, FIFOs, set-id bits, and more than `limits`
 * (counted on the decompressed stream, so a decompression bomb stops at the cap).
 */
export async function extractTar(input: Readable, dest: string, limits: ExtractLimits): Promise<ExtractSummary> {
  const summary: ExtractSummary = { entries: 0, bytes: 0 };
  const root = await open(dest, DIR_FLAGS);
  const files = new Set<string>();
  const unpack = extract();
  unpack.on('entry', (header, stream, next) => {
    summary.entries += 1;
    writeEntry(root, header, stream, files, summary, limits).then(
      () => next(),
      (error: unknown) => {
        stream.resume();
        next(error as Error);
      },
    );
  });
  try {
    await pipeline(input, decompressIfGzip, countBytes(limits.maxBytes, (n) => (summary.bytes = n)), unpack);
  } catch (error) {
    if (error instanceof ArchiveRefusal) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw new ArchiveRefusal('ARCHIVE_REFUSED', 'an entry passes through a symbolic link or a file');
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || /tar|header|unexpected end/i.test((error as Error).message)) {
      throw new ArchiveRefusal('ARCHIVE_INVALID', `not a valid .tar or .tar.gz: ${(error as Error).message}`);
    }
    throw error;
  } finally {
    await root.close();
  }
  return summary;
}

async function writeEntry(
  root: FileHandle,
  header: Header,
  stream: EntryStream,
  files: Set<string>,
  summary: ExtractSummary,
  limits: ExtractLimits,
): Promise<void> {
  if (summary.entries > limits.maxEntries) throw new ArchiveRefusal('ARCHIVE_TOO_LARGE', `more than ${limits.maxEntries} entries`);
  const name = checkName(header.name);
  const mode = header.mode ?? 0o644;
  if (mode & 0o6000) throw new ArchiveRefusal('ARCHIVE_REFUSED', `${header.name} has a set-user-id or set-group-id bit`);
  if (name === '') {
    stream.resume();
    return;
  }
  const [parent, base] = splitLast(name);
  const dir = await openFolder(root, parent);
  try {
    switch (header.type) {
      case 'directory':
        await mkdir(at(dir, base), mode & 0o777).catch(ignoreExisting);
        await open(at(dir, base), DIR_FLAGS).then((d) => d.close());
        stream.resume();
        return;
      case 'file':
      case 'contiguous-file': {
        await removeIfLink(dir, base);
        const file = await open(at(dir, base), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode & 0o777);
        try {
          for await (const chunk of stream) await file.write(chunk as Buffer);
          await file.chmod(mode & 0o777);
        } finally {
          await file.close();
        }
        files.add(name);
        return;
      }
      case 'symlink': {
        const target = header.linkname ?? '';
        const resolved = posix.normalize(posix.join(parent, target));
        if (target.startsWith('/') || resolved === '..' || resolved.startsWith('../') || target.includes('\0')) {
          throw new ArchiveRefusal('ARCHIVE_REFUSED', `${header.name} is a symbolic link out of the destination (${target})`);
        }
        await removeIfLink(dir, base);
        await symlink(target, at(dir, base));
        stream.resume();
        return;
      }
      case 'link': {
        // A hard link may only name a regular file this archive wrote: never anything that was there before.
        const target = checkName(header.linkname ?? '');
        if (!files.has(target)) throw new ArchiveRefusal('ARCHIVE_REFUSED', `${header.name} is a hard link to ${header.linkname}, not a file of this archive`);
        const [targetParent, targetBase] = splitLast(target);
        const targetDir = await openFolder(root, targetParent);
        try {
          await removeIfLink(dir, base);
          await link(at(targetDir, targetBase), at(dir, base));
        } finally {
          await targetDir.close();
        }
        stream.resume();
        return;
      }
      default:
        throw new ArchiveRefusal('ARCHIVE_REFUSED', `${header.name} is a ${header.type ?? 'special file'}; only files, folders and links are extracted`);
    }
  } finally {
    await dir.close();
  }
}

/** The entry's path inside the destination, `''` for the destination itself; refuses anything that leaves it. */
function checkName(raw: string): string {
  if (raw.includes('\0')) throw new ArchiveRefusal('ARCHIVE_REFUSED', 'an entry name contains a NUL byte');
  if (raw.startsWith('/')) throw new ArchiveRefusal('ARCHIVE_REFUSED', `${raw} is an absolute name`);
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new ArchiveRefusal('ARCHIVE_REFUSED', `${raw} contains ..`);
  return parts.join('/');
}

// Opens (making them as needed) the folders of `relative` one at a time, never through a symbolic link.
async function openFolder(root: FileHandle, relative: string): Promise<FileHandle> {
  return walkFoldersNoFollow(await open(at(root, '.'), DIR_FLAGS), relative ? relative.split('/') : [], { createMode: 0o755 });
}

// An existing link under the entry's name is replaced, never written through; an existing folder stays (EISDIR).
async function removeIfLink(dir: FileHandle, name: string): Promise<void> {
  const stats = await lstat(at(dir, name)).catch(() => undefined);
  if (stats && !stats.isDirectory() && (stats.isSymbolicLink() || stats.nlink > 1)) await unlink(at(dir, name));
}

function ignoreExisting(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
}

function splitLast(relative: string): [parent: string, name: string] {
  const slash = relative.lastIndexOf('/');
  return slash < 0 ? ['', relative] : [relative.slice(0, slash), relative.slice(slash + 1)];
}

/** Yields the stream gunzipped when it starts with gzip's magic bytes, unchanged otherwise. */
async function* decompressIfGzip(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const chunks = source[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < GZIP_MAGIC.length) {
    const next = await chunks.next();
    if (next.done) break;
    head = Buffer.concat([head, next.value]);
  }
  async function* whole(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  }
  if (head[0] !== GZIP_MAGIC[0] || head[1] !== GZIP_MAGIC[1]) return yield* whole();
  const gunzip = createGunzip();
  // Errors of the feeding side surface through the gunzip stream being iterated.
  pipeline(Readable.from(whole()), gunzip).catch(() => {});
  for await (const chunk of gunzip) yield chunk as Buffer;
}

/** Fails the stream once more than `maxBytes` went through (the decompressed size: a bomb stops here). */
function countBytes(maxBytes: number, onCount: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      onCount(total);
      if (total > maxBytes) return done(new ArchiveRefusal('ARCHIVE_TOO_LARGE', `the archive unpacks to more than ${maxBytes} bytes`));
      done(null, chunk);
    },
  });
}
