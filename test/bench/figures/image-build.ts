import { dockerCli } from '../bench-env.js';
import type { BenchContext, BenchSession } from '../context.js';
import { compareRow, type Row } from '../report.js';
import { interleave } from '../stats.js';

const CONTEXT = '/workspace/bench-build';
// FROM the image every session preloads (nothing can be pulled); one COPY and one RUN, so an inner container runs.
const DOCKERFILE = 'FROM runner-busybox:latest\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /built.txt\n';
// The learner's rootless daemon, as /etc/profile.d/runner-docker.sh sets it for login shells.
const LEARNER_DOCKER_HOST = 'unix:///run/user/1000/docker.sock';

/** A small image built without cache through `POST /sessions/{id}/build`, and by `docker exec … docker build`. */
export async function measureImageBuild(ctx: BenchContext, session: BenchSession): Promise<Row[]> {
  await session.direct.mkdir(CONTEXT);
  await session.direct.writeFile(`${CONTEXT}/Dockerfile`, DOCKERFILE);
  await session.direct.writeFile(`${CONTEXT}/hello.txt`, 'hello from the bench\n');
  const viaApi = async () => {
    await session.viaController.build({ context_path: CONTEXT, image_tag: 'bench-small:api', no_cache: true });
  };
  const viaDockerExec = () =>
    dockerCli([
      'exec', '-u', 'learner', '-w', '/workspace', '-e', `DOCKER_HOST=${LEARNER_DOCKER_HOST}`, '-e', 'DOCKER_BUILDKIT=0',
      session.containerName, 'docker', 'build', '--no-cache', '-q', '-t', 'bench-small:cli', CONTEXT,
    ]);
  const timings = await interleave({ api: viaApi, dockerExec: viaDockerExec }, { warmup: 1, rounds: ctx.profile.buildRounds, maxMs: 120_000 });
  const s = ctx.record('image_build', timings);
  return [
    compareRow('small image build via API (no cache), p50', 'ms', s.api.p50, '`docker exec … docker build`', s.dockerExec.p50, {
      note: `n=${s.api.n} each`,
    }),
  ];
}
