import { z } from 'zod';
import { TerminalId } from './terminal.js';

/** What a grant lets a browser do: open one terminal socket, browse one port's preview origin, download one file. */
export const GrantCapability = z.enum(['terminal', 'preview', 'file']);
export type GrantCapability = z.infer<typeof GrantCapability>;

/**
 * `POST /sessions/{id}/grants`. `port` is required for `preview`, `path` (`/workspace/…`) for `file`; `terminal_id`
 * binds a terminal ticket to one terminal. `ttl_seconds` is capped per capability: 60 for a terminal ticket and a
 * preview's sign-in link, 300 for a file link.
 */
export const GrantRequest = z.object({
  capability: GrantCapability,
  port: z.number().int().optional(),
  path: z.string().min(1).max(4096).optional(),
  terminal_id: TerminalId.optional(),
  ttl_seconds: z.number().int().positive().optional(),
});
export type GrantRequest = z.infer<typeof GrantRequest>;

/** `201` of `POST /sessions/{id}/grants`: the URL a browser opens as is. */
export const GrantResponse = z.object({
  url: z.string(),
  capability: GrantCapability,
  /** ISO 8601, UTC: the URL is refused after this. */
  expires_at: z.string(),
});
export type GrantResponse = z.infer<typeof GrantResponse>;

/** `DELETE /sessions/{id}/grants`: every earlier grant is refused and what was opened with one is closed. */
export const RevokeGrantsResponse = z.object({
  session_id: z.string(),
  revoked: z.literal(true),
});
export type RevokeGrantsResponse = z.infer<typeof RevokeGrantsResponse>;

/** Query of a file link. */
export const DownloadQuery = z.object({ token: z.string().max(8192) });
export type DownloadQuery = z.infer<typeof DownloadQuery>;
