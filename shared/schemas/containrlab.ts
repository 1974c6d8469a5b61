import { z } from 'zod';
import { SessionId } from './session.js';

/*
 * ContainrLab's flat API (on with CONTAINRLAB_COMPAT=true): the bodies its backend and judges send, field for
 * field. Errors are `{detail}`; a malformed body is 422.
 */

const Env = z.record(z.string(), z.string());

/** `POST /start`: a session seeded from `LABS_ROOT/<lab_slug>/starter`. */
export const StartRequest = z.object({ session_id: SessionId, lab_slug: z.string().min(1) });
/** `POST /stop`: idempotent; `preserve_workspace` keeps the workspace for the next `/start` of this id. */
export const StopRequest = z.object({ session_id: SessionId, preserve_workspace: z.boolean().default(false) });
export const ExecRequest = z.object({
  session_id: SessionId,
  command: z.array(z.string()).min(1),
  workdir: z.string().min(1).nullish(),
  environment: Env.nullish(),
});
export const BuildRequest = z.object({
  session_id: SessionId,
  context_path: z.string().default('/workspace'),
  dockerfile_path: z.string().default('Dockerfile'),
  image_tag: z.string().nullish(),
  build_args: Env.nullish(),
});
export const RunRequest = z.object({
  session_id: SessionId,
  image: z.string().min(1),
  command: z.array(z.string()).nullish(),
  env: Env.nullish(),
  ports: z.array(z.string()).nullish(),
  name: z.string().nullish(),
  detach: z.boolean().default(true),
  auto_remove: z.boolean().default(false),
  remove_existing: z.boolean().default(true),
});
export const RunStopRequest = z.object({
  session_id: SessionId,
  container_name: z.string().nullish(),
  timeout: z.number().int().min(0).default(10),
  remove: z.boolean().default(true),
  ignore_missing: z.boolean().default(true),
});
/** `/fs/*`: paths relative to `/workspace` or absolute inside it; content is base64. */
export const FsPathRequest = z.object({ session_id: SessionId, path: z.string().nullish() });
/** `/fs/read` and `/fs/delete`: one entry. */
export const FsEntryRequest = z.object({ session_id: SessionId, path: z.string() });
export const FsWriteRequest = z.object({ session_id: SessionId, path: z.string(), content: z.string(), encoding: z.string().default('base64') });
export const FsCreateRequest = z.object({
  session_id: SessionId,
  path: z.string(),
  kind: z.enum(['file', 'directory']).default('file'),
  content: z.string().nullish(),
  encoding: z.string().default('base64'),
});
export const FsRenameRequest = z.object({ session_id: SessionId, path: z.string(), new_path: z.string() });

/** Paths of the flat API, at the controller's root. */
export const ContainrLabRoute = {
  healthz: '/healthz',
  start: '/start',
  stop: '/stop',
  exec: '/exec',
  build: '/build',
  run: '/run',
  runStop: '/run/stop',
  fsList: '/fs/list',
  fsRead: '/fs/read',
  fsWrite: '/fs/write',
  fsCreate: '/fs/create',
  fsRename: '/fs/rename',
  fsDelete: '/fs/delete',
  terminal: '/terminal/:session_id',
} as const;

/** Terminal frames a client sends (JSON text); any other text is typed into the shell as it is. */
export const TerminalClientFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input'), data: z.string() }),
  z.object({ type: z.literal('resize'), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }),
  z.object({ type: z.literal('pong') }),
]);
export type TerminalClientFrame = z.infer<typeof TerminalClientFrame>;
