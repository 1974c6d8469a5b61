import { lstat, realpath } from 'node:fs/promises';
import { posix, sep } from 'node:path';
import { SESSION_PATHS } from '../../core/session-layout.js';
import { AppError } from '../../shared/errors.js';

/** How clients name the workspace, whatever folder it really is on disk: as a session's terminal names it. */
export const PUBLIC_WORKSPACE = SESSION_PATHS.workspace;

export interface WorkspacePath {
  /** The path as clients see it: `/workspace/...`. */
  public: string;
  /** The path relative to the workspace root ('' for the root itself). */
  relative: string;
  /** The absolute path on disk, symlinks resolved as far as the path exists. */
  real: string;
}

export interface ResolveOptions {
  /**
   * Resolve a final symlink (true, default) or stop at it (false: for deleting or renaming the link itself).
   * Symlinks in the parent folders are always followed and checked.
   */
  followFinal?: boolean;
}

/**
 * Resolves a client path (`/workspace/...` or relative to it) to a real path inside the workspace, following
 * symlinks, and refuses anything that ends up outside. `workspaceReal` must itself be a real path.
 */
export async function resolveWorkspacePath(
  workspaceReal: string,
  requested: string,
  options: ResolveOptions = {},
): Promise<WorkspacePath> {
  const { followFinal = true } = options;
  if (requested.includes('\0')) throw new AppError('INVALID_PATH', 'path contains a NUL byte');
  if (requested.length > 4096) throw new AppError('INVALID_PATH', 'path is too long');
  const normalized = posix.resolve(PUBLIC_WORKSPACE, requested);
  if (normalized !== PUBLIC_WORKSPACE && !normalized.startsWith(`${PUBLIC_WORKSPACE}/`)) {
    throw new AppError('PATH_OUTSIDE_WORKSPACE', `${requested} is outside ${PUBLIC_WORKSPACE}`);
  }
  const relative = normalized.slice(PUBLIC_WORKSPACE.length + 1);
  const lexical = relative ? `${workspaceReal}${sep}${relative}` : workspaceReal;

  // Walk up to the deepest part that exists and resolve its symlinks; the rest does not exist yet.
  let existing = lexical;
  let missing = '';
  let real: string | undefined;
  for (;;) {
    const skipLink = !followFinal && existing === lexical && (await isSymlink(existing));
    try {
      real = skipLink ? `${await realpath(posix.dirname(existing))}/${posix.basename(existing)}` : await realpath(existing);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        if (code === 'ELOOP') throw new AppError('INVALID_PATH', 'too many levels of symbolic links');
        throw error;
      }
      // A dangling symlink: realpath fails although the link exists. Where it points decides.
      if (await isSymlink(existing)) {
        throw new AppError('PATH_OUTSIDE_WORKSPACE', `${requested} is a symbolic link that does not resolve inside ${PUBLIC_WORKSPACE}`);
      }
      if (existing === workspaceReal) throw error;
      missing = missing ? `${posix.basename(existing)}/${missing}` : posix.basename(existing);
      existing = posix.dirname(existing);
    }
  }
  const full = missing ? `${real}/${missing}` : real;
  if (full !== workspaceReal && !full.startsWith(`${workspaceReal}/`)) {
    throw new AppError('PATH_OUTSIDE_WORKSPACE', `${requested} resolves outside ${PUBLIC_WORKSPACE}`);
  }
  const realRelative = full.slice(workspaceReal.length + 1);
  return { public: realRelative ? `${PUBLIC_WORKSPACE}/${realRelative}` : PUBLIC_WORKSPACE, relative: realRelative, real: full };
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch {
    return false;
  }
}
