import { lstatSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-fs';
import { AppError } from '../../shared/errors.js';
import { resolveWorkspacePath } from '../files/workspace-path.js';
import { Dockerignore } from './dockerignore.js';

const DOCKERIGNORE_MAX_BYTES = 1024 * 1024;

/** A build context checked against the workspace, ready to be packed. */
export interface BuildContext {
  /** The context folder on disk (real path). */
  dir: string;
  /** The context as clients name it (`/workspace/...`). */
  public: string;
  /** The Dockerfile's path inside the context, as the daemon reads it from the tar. */
  dockerfile: string;
  ignore: Dockerignore;
}

/** Checks that the context is a folder of the workspace and the Dockerfile a file inside that context. */
export async function resolveBuildContext(workspace: string, contextPath: string, dockerfilePath: string): Promise<BuildContext> {
  const workspaceReal = await realpath(workspace);
  const context = await resolveWorkspacePath(workspaceReal, contextPath);
  const contextStat = await stat(context.real).catch(() => undefined);
  if (!contextStat) throw new AppError('FILE_NOT_FOUND', `build context ${context.public} does not exist`);
  if (!contextStat.isDirectory()) throw new AppError('NOT_A_DIRECTORY', `build context ${context.public} is not a folder`);

  const dockerfile = await resolveWorkspacePath(workspaceReal, posix.resolve(context.public, dockerfilePath));
  const inside = posix.relative(context.real, dockerfile.real);
  if (!inside || inside === '..' || inside.startsWith('../')) {
    throw new AppError('INVALID_PATH', `the Dockerfile ${dockerfilePath} must be inside the build context ${context.public}`);
  }
  const dockerfileStat = await stat(dockerfile.real).catch(() => undefined);
  if (!dockerfileStat) throw new AppError('FILE_NOT_FOUND', `no Dockerfile at ${dockerfile.public}`);
  if (!dockerfileStat.isFile()) throw new AppError('IS_A_DIRECTORY', `the Dockerfile ${dockerfile.public} is not a file`);

  return { dir: context.real, public: context.public, dockerfile: inside, ignore: await readDockerignore(workspaceReal, context.public) };
}

async function readDockerignore(workspaceReal: string, contextPublic: string): Promise<Dockerignore> {
  // Resolved like any client path, so a .dockerignore symlinked out of the workspace is refused, not read.
  const file = await resolveWorkspacePath(workspaceReal, posix.join(contextPublic, '.dockerignore'));
  const info = await stat(file.real).catch(() => undefined);
  if (!info?.isFile()) return new Dockerignore('');
  if (info.size > DOCKERIGNORE_MAX_BYTES) throw new AppError('VALIDATION', `${file.public} is larger than 1 MiB`);
  return new Dockerignore(await readFile(file.real, 'utf8'));
}

/**
 * Packs the context as a tar stream. Symlinks go in as links (never followed, so a link to /etc ships a link,
 * not /etc); files `.dockerignore` excludes stay out, except the Dockerfile and `.dockerignore` the daemon needs.
 */
export function packBuildContext(context: BuildContext): Readable {
  const kept = new Set([context.dockerfile, '.dockerignore']);
  // tar-fs makes a streamx stream; a Node Readable is what dockerode expects to pipe.
  const tar = pack(context.dir, {
    dereference: false,
    // Sockets, fifos and devices have no place in an image: skip them rather than fail the build.
    strict: false,
    ignore: (absolute) => {
      const relative = posix.relative(context.dir, absolute);
      if (kept.has(relative) || context.dockerfile.startsWith(`${relative}/`)) return false;
      if (!context.ignore.excludes(relative)) return false;
      // Skipping a folder skips all of it: keep walking into it when a `!` line may bring something back.
      return !(context.ignore.mayReinclude(relative) && isFolder(absolute));
    },
  });
  return Readable.from(tar, { objectMode: false });
}

function isFolder(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}
