import { z } from 'zod';

/** A change in the workspace. `path` is relative to the workspace root, with `/` separators. */
export const WatchChange = z.object({
  type: z.enum(['created', 'changed', 'deleted']),
  path: z.string(),
  kind: z.enum(['file', 'directory']),
});
export type WatchChange = z.infer<typeof WatchChange>;

/** Sent once per subscriber when the watcher is running: every change after it is reported. */
export const WatchReady = z.object({ type: z.literal('ready') });
export type WatchReady = z.infer<typeof WatchReady>;

/** The watcher hit a problem (e.g. the system's limit of inotify watches); changes may be missed. */
export const WatchError = z.object({ type: z.literal('error'), message: z.string() });
export type WatchError = z.infer<typeof WatchError>;

/**
 * One frame of `GET /watch/ws` (a JSON text frame) or of `GET /watch` (Server-Sent Events: `data: <JSON>`, with
 * `: keepalive` comments in between).
 */
export const WatchFrame = z.discriminatedUnion('type', [WatchChange, WatchReady, WatchError]);
export type WatchFrame = z.infer<typeof WatchFrame>;
