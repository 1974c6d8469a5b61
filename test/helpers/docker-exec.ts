import type Docker from 'dockerode';
import { readLogStream } from '../../core/docker/log-demux.js';

/** `docker exec` into a container (not through the agent): root by default, to look at or break a session. */
export async function dockerExec(docker: Docker, container: string, command: string[], user = 'root'): Promise<{ exitCode: number; output: string }> {
  const exec = await docker.getContainer(container).exec({ Cmd: command, User: user, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  await readLogStream(docker, stream, false, (_source, chunk) => chunks.push(chunk));
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
}
