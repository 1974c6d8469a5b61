import { z } from 'zod';

/** A client path: `/workspace/...`, or relative to `/workspace`. The agent refuses anything that resolves outside. */
export const WorkspacePathString = z.string().min(1, 'path must not be empty');
export type WorkspacePathString = z.infer<typeof WorkspacePathString>;

/** What an entry of a listing is; symbolic links are reported as links, never followed. */
export const FileType = z.enum(['file', 'directory', 'symlink', 'other']);
export type FileType = z.infer<typeof FileType>;

/** One entry of `GET /files`. */
export const FileEntry = z.object({
  name: z.string(),
  /** Public path of the entry: `/workspace/...`. */
  path: z.string(),
  type: FileType,
  /** Bytes (for a symbolic link: the length of its target). */
  size: z.number().int().nonnegative(),
  /** Permission bits as an octal string, e.g. `"0644"`. */
  mode: z.string().regex(/^[0-7]{4}$/),
  /** Last modification, ISO 8601. */
  modified: z.string(),
});
export type FileEntry = z.infer<typeof FileEntry>;

/** Query of `GET /files`. */
export const ListFilesQuery = z.object({
  path: WorkspacePathString.default('/workspace'),
  /** How many levels to list: 1 is the folder itself; subfolders reached through symbolic links are never entered. */
  depth: z.coerce.number().int().min(1).max(10).default(1),
});
export type ListFilesQuery = z.infer<typeof ListFilesQuery>;

/** Answer of `GET /files`: entries of each folder sorted by name, each folder's content right after it. */
export const FileList = z.object({
  path: z.string(),
  entries: z.array(FileEntry),
  /** More entries exist than the agent returns in one listing. */
  truncated: z.boolean(),
});
export type FileList = z.infer<typeof FileList>;

/** How file content travels in JSON: text when the bytes are valid UTF-8, base64 otherwise. */
export const FileEncoding = z.enum(['utf-8', 'base64']);
export type FileEncoding = z.infer<typeof FileEncoding>;

/** JSON answer of `GET /files/workspace/<path>` (send `Accept: application/octet-stream` for the raw bytes). */
export const FileContent = z.object({
  path: z.string(),
  encoding: FileEncoding,
  content: z.string(),
  size: z.number().int().nonnegative(),
  modified: z.string(),
});
export type FileContent = z.infer<typeof FileContent>;

// Standard alphabet with padding: Buffer.from(…, 'base64') would silently skip anything else.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** JSON body of `PUT /files/workspace/<path>`; the raw alternative is an `application/octet-stream` body. */
export const WriteFileRequest = z
  .strictObject({
    content: z.string(),
    encoding: FileEncoding.default('utf-8'),
  })
  .refine((body) => body.encoding !== 'base64' || BASE64.test(body.content), {
    message: 'content is not valid base64',
    path: ['content'],
  });
export type WriteFileRequest = z.infer<typeof WriteFileRequest>;

/** Answer of `PUT /files/workspace/<path>`: 201 when the file was created, 200 when it was replaced. */
export const WriteFileResult = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
});
export type WriteFileResult = z.infer<typeof WriteFileResult>;

/** Answer of `DELETE /files/workspace/<path>`. */
export const DeleteFileResult = z.object({ path: z.string() });
export type DeleteFileResult = z.infer<typeof DeleteFileResult>;

/** `POST /files/mkdir`: creates the folder and its missing parents, owned by the learner. */
export const MkdirRequest = z.strictObject({ path: WorkspacePathString });
export type MkdirRequest = z.infer<typeof MkdirRequest>;

/** Answer of `POST /files/mkdir`: 201 when created, 200 when the folder already existed. */
export const MkdirResult = z.object({ path: z.string() });
export type MkdirResult = z.infer<typeof MkdirResult>;

/** `POST /files/move`: renames a file, folder or symbolic link (the link itself), creating the target's parents. */
export const MoveRequest = z.strictObject({
  from: WorkspacePathString,
  to: WorkspacePathString,
  /** Replace an existing target (a folder only when it is empty); otherwise an existing target is 409. */
  overwrite: z.boolean().default(false),
});
export type MoveRequest = z.infer<typeof MoveRequest>;

/** Answer of `POST /files/move`. */
export const MoveResult = z.object({ from: z.string(), to: z.string() });
export type MoveResult = z.infer<typeof MoveResult>;
