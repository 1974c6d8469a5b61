import { realpath, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from '../../shared/errors.js';
import { packAsLearner, type LearnerIds } from '../as-learner/learner-tar.js';
import { WorkspaceFiles } from '../files/workspace-files.js';
import { resolveWorkspacePath } from '../files/workspace-path.js';
import { Dockerignore, DockerignoreError } from './dockerignore.js';

const DOCKERIGNORE_MAX_BYTES = 1024 * 1024;

/** A build context checked against the workspace, ready to be packed. */
export interface BuildContext {
  /** The context folder on disk (real path). */
  dir: string;
  /** The context as clients name it (`/workspace/...`). */
  public: string;
  /** The Dockerfile's path inside the context, as the daemon reads it from the tar. */
  dockerfile: string;
  /** The context's `.dockerignore` (checked: its patterns parse), applied while packing. */
  dockerignore: string;
  /** Who packs it: the learner, whose rights decide what can be read. */
  learner: LearnerIds;
}

/** Checks that the context is a folder of the workspace and the Dockerfile a file inside that context. */
export async function resolveBuildContext(workspace: string, contextPath: string, dockerfilePath: string, learner: LearnerIds): Promise<BuildContext> {
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

  const dockerignore = await readDockerignore(workspaceReal, context.public, learner);
  return { dir: context.real, public: context.public, dockerfile: inside, dockerignore, learner };
}

async function readDockerignore(workspaceReal: string, contextPublic: string, learner: LearnerIds): Promise<string> {
  // Opened like a file of the files API: through no-follow descriptors, so a swapped-in link fails instead of leading out.
  const path = posix.join(contextPublic, '.dockerignore');
  const file = await new WorkspaceFiles(workspaceReal, learner).open(path).catch((error: unknown) => {
    const missing = error instanceof AppError ? ['FILE_NOT_FOUND', 'IS_A_DIRECTORY'].includes(error.code) : ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
    if (missing) return undefined;
    throw error;
  });
  if (!file) return '';
  try {
    if (file.stats.size > DOCKERIGNORE_MAX_BYTES) throw new AppError('VALIDATION', `${path} is larger than 1 MiB`);
    const text = await file.handle.readFile('utf8');
    checkDockerignore(text);
    return text;
  } finally {
    await file.handle.close();
  }
}

// A bad pattern is the client's error, answered before any build starts.
function checkDockerignore(text: string): void {
  try {
    new Dockerignore(text);
  } catch (error) {
    throw error instanceof DockerignoreError ? new AppError('VALIDATION', error.message) : error;
  }
}

/**
 * Packs the context as a tar stream, as the learner (agent/as-learner/learner-tar.ts). Symlinks go in as links
 * (never followed, so a link to /etc ships a link, not /etc); files `.dockerignore` excludes stay out, except the
 * Dockerfile and `.dockerignore` the daemon needs. The stream fails with a PackError when packing fails.
 */
export function packBuildContext(context: BuildContext): Readable {
  return packAsLearner(context.learner, { dir: context.dir, dockerignore: context.dockerignore, keep: [context.dockerfile, '.dockerignore'] });
}
