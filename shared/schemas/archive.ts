import { z } from 'zod';
import { WorkspacePathString } from './files.js';

/** Query of `GET /archive` and `PUT /archive`: the folder to pack, or to extract into (made if missing). */
export const ArchiveQuery = z.object({
  path: WorkspacePathString.default('/workspace'),
});
export type ArchiveQuery = z.infer<typeof ArchiveQuery>;

/** Answer of `PUT /archive`. */
export const ArchiveExtractResult = z.object({
  path: z.string(),
  /** Entries the archive held. */
  entries: z.number().int().nonnegative(),
  /** Bytes of the decompressed tar stream. */
  bytes: z.number().int().nonnegative(),
});
export type ArchiveExtractResult = z.infer<typeof ArchiveExtractResult>;
