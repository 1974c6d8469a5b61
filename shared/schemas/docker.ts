import { z } from 'zod';
import { EnvMap } from './common.js';

const hasNoNul = (value: string): boolean => !value.includes('\0');

// Docker's reference grammar (distribution/reference), without the parts a leading `-` or a space could sneak into.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const TAG = ':[\\w][\\w.-]{0,127}';
const DIGEST = '@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE_TAG_RE = new RegExp(`^${NAME}(?:${TAG})?$`);
const IMAGE_REFERENCE_RE = new RegExp(`^(?:${NAME}(?:${TAG})?(?:${DIGEST})?|(?:sha256:)?[0-9a-f]{12,64})$`);

/** A name and optional tag to give a built image, e.g. `myapp:1.0` or `registry.local:5000/team/app`. */
export const ImageTag = z.string().max(255).regex(IMAGE_TAG_RE, 'not a valid image name[:tag] (lowercase name, no leading "-", no spaces)');
export type ImageTag = z.infer<typeof ImageTag>;

/** An image to run: `name[:tag][@digest]` or an image id. Nothing is pulled: it must already be in the daemon. */
export const ImageReference = z.string().max(512).regex(IMAGE_REFERENCE_RE, 'not a valid image reference (no leading "-", no spaces)');
export type ImageReference = z.infer<typeof ImageReference>;

/** A container name or id, as Docker accepts it: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. */
export const ContainerName = z.string().max(128).regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a container name matches [a-zA-Z0-9][a-zA-Z0-9_.-]*');
export type ContainerName = z.infer<typeof ContainerName>;

/** A published port, parsed from `[ip:][host_port:]container_port[/protocol]`. */
export interface PortSpec {
  /** Host address to bind; '' means every address. */
  host_ip: string;
  /** Host port; '' lets Docker pick a free one. */
  host_port: string;
  container_port: number;
  protocol: 'tcp' | 'udp' | 'sctp';
}

const PORT_RE = /^(?:(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):)?(\d{0,5}):)?(\d{1,5})(?:\/(tcp|udp|sctp))?$/;
const IPV4 = z.ipv4();
const IPV6 = z.ipv6();
const isPort = (digits: string): boolean => /^[1-9]\d{0,4}$/.test(digits) && Number(digits) <= 65_535;

/** Parses one `ports` entry strictly (ports 1..65535, no ranges); undefined when it is malformed. */
export function parsePortSpec(spec: string): PortSpec | undefined {
  const match = PORT_RE.exec(spec);
  if (!match) return undefined;
  const [, ip = '', hostPort = '', containerPort = '', protocol = 'tcp'] = match;
  if (!isPort(containerPort) || (hostPort !== '' && !isPort(hostPort))) return undefined;
  // `8080:` is malformed; `127.0.0.1::80` (ip with a free host port) is Docker's own spelling and fine.
  if (hostPort === '' && !ip && spec.includes(':')) return undefined;
  const hostIp = ip.replace(/^\[|\]$/g, '');
  if (ip && !(IPV4.safeParse(hostIp).success || IPV6.safeParse(hostIp).success)) return undefined;
  return { host_ip: hostIp, host_port: hostPort, container_port: Number(containerPort), protocol: protocol as PortSpec['protocol'] };
}

const PortMapping = z
  .string()
  .max(64)
  .refine((spec) => parsePortSpec(spec) !== undefined, 'a port is [ip:][host_port:]container_port[/tcp|udp|sctp] with ports 1..65535');

/** `POST /build` and `POST /build/stream`: build an image from a folder of the workspace. */
export const BuildRequest = z.object({
  /** The build context: a folder of the workspace (`/workspace/...` or relative to it). */
  context_path: z.string().min(1).default('/workspace'),
  /** The Dockerfile, relative to the context (or absolute under /workspace); it must be inside the context. */
  dockerfile_path: z.string().min(1).default('Dockerfile'),
  image_tag: ImageTag,
  /** `ARG` values, as `docker build --build-arg NAME=value`. */
  build_args: EnvMap.refine((args) => Object.values(args).every(hasNoNul), 'a build arg contains a NUL byte').optional(),
  /** Ignore the layer cache. */
  no_cache: z.boolean().default(false),
});
export type BuildRequest = z.infer<typeof BuildRequest>;

/** Figures about a finished build. */
export const BuildMetrics = z.object({
  /** Size of the image in MB (10^6 bytes, as `docker images` shows it). */
  image_size_mb: z.number(),
  elapsed_seconds: z.number(),
  /** Steps answered from the layer cache. */
  cache_hits: z.number().int(),
  /** File-system layers of the image, its base image's included. */
  layer_count: z.number().int(),
});
export type BuildMetrics = z.infer<typeof BuildMetrics>;

/** Answer of `POST /build`. A failed build is instead a 422 `BUILD_FAILED` error with `logs` at the top level. */
export const BuildResult = z.object({
  image_tag: z.string(),
  image_id: z.string(),
  /** The builder's output, line by line (the oldest lines are dropped past the agent's output limit). */
  logs: z.array(z.string()),
  metrics: BuildMetrics,
});
export type BuildResult = z.infer<typeof BuildResult>;

/** One line of builder output, as it came. */
export const BuildLogFrame = z.object({ type: z.literal('log'), line: z.string() });
export type BuildLogFrame = z.infer<typeof BuildLogFrame>;

/** Sent after `keepaliveSeconds` without output, so proxies and clients know the build is alive. */
export const BuildHeartbeatFrame = z.object({ type: z.literal('heartbeat') });
export type BuildHeartbeatFrame = z.infer<typeof BuildHeartbeatFrame>;

/** The last frame of a successful build: the same fields as the answer of `POST /build`. */
export const BuildDoneFrame = BuildResult.extend({ type: z.literal('done') });
export type BuildDoneFrame = z.infer<typeof BuildDoneFrame>;

/** The last frame of a failed build: the same fields as the error body of `POST /build`. */
export const BuildErrorFrame = z.object({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
  logs: z.array(z.string()),
});
export type BuildErrorFrame = z.infer<typeof BuildErrorFrame>;

/** One line of the `application/x-ndjson` answer of `POST /build/stream`. */
export const BuildFrame = z.discriminatedUnion('type', [BuildLogFrame, BuildHeartbeatFrame, BuildDoneFrame, BuildErrorFrame]);
export type BuildFrame = z.infer<typeof BuildFrame>;

/** `POST /run`: create and start a container from an image the daemon already has. */
export const RunRequest = z.object({
  image: ImageReference,
  /** Replaces the image's CMD, e.g. `["sh", "-c", "echo hi"]`. */
  command: z.array(z.string().max(128 * 1024).refine(hasNoNul, 'an argument contains a NUL byte')).min(1).max(4096).optional(),
  env: EnvMap.refine((env) => Object.values(env).every(hasNoNul), 'an env value contains a NUL byte').optional(),
  /** Published ports: `"8080:8080"`, `"127.0.0.1:8081:80"`, `"9000:9000/udp"`, or `"80"` for a free host port. */
  ports: z.array(PortMapping).max(64).default([]),
  name: ContainerName.optional(),
  /** Return once it started (true), or wait for it to exit and return its output and exit code (false). */
  detach: z.boolean().default(true),
  /** Remove the container once it exits. */
  auto_remove: z.boolean().default(false),
  /** Working folder inside the container (absolute). */
  workdir: z.string().max(4096).regex(/^\//, 'workdir must be an absolute path').refine(hasNoNul, 'workdir contains a NUL byte').optional(),
  /** With `detach: false`: seconds before the container is killed; default and maximum are the agent's exec timeout. */
  timeout_seconds: z.number().int().positive().optional(),
});
export type RunRequest = z.infer<typeof RunRequest>;

/** Answer of `POST /run`; the last three fields only with `detach: false`. */
export const RunResult = z.object({
  container_name: z.string(),
  container_id: z.string(),
  exit_code: z.number().int().optional(),
  /** stdout and stderr lines, interleaved in the order they were written. */
  logs: z.array(z.string()).optional(),
  /** The wait passed `timeout_seconds` and the container was killed. */
  timed_out: z.boolean().optional(),
});
export type RunResult = z.infer<typeof RunResult>;

/** `POST /stop`: stop a container and (by default) remove it with its anonymous volumes. */
export const StopRequest = z.object({
  container_name: ContainerName,
  /** Seconds between SIGTERM and SIGKILL. */
  timeout: z.number().int().min(0).max(3600).default(10),
  remove: z.boolean().default(true),
  /** Answer 200 (with nothing stopped or removed) instead of 404 when there is no such container. */
  ignore_missing: z.boolean().default(false),
});
export type StopRequest = z.infer<typeof StopRequest>;

/** Answer of `POST /stop`. */
export const StopResult = z.object({
  container_name: z.string(),
  /** The container was running and this call stopped it. */
  stopped: z.boolean(),
  /** The container is gone. */
  removed: z.boolean(),
});
export type StopResult = z.infer<typeof StopResult>;

/** A port of a listed container; `host_*` only when it is published. */
export const ContainerPort = z.object({
  container_port: z.number().int(),
  protocol: z.string(),
  host_ip: z.string().optional(),
  host_port: z.number().int().optional(),
});
export type ContainerPort = z.infer<typeof ContainerPort>;

/** One container of `GET /containers` (running or not). */
export const ContainerSummary = z.object({
  name: z.string(),
  id: z.string(),
  image: z.string(),
  /** `created`, `running`, `exited`, … */
  state: z.string(),
  /** Docker's human-readable status, e.g. `Up 3 minutes`. */
  status: z.string(),
  ports: z.array(ContainerPort),
  created: z.string(),
});
export type ContainerSummary = z.infer<typeof ContainerSummary>;

/** Answer of `GET /containers`. */
export const ContainerList = z.object({ containers: z.array(ContainerSummary) });
export type ContainerList = z.infer<typeof ContainerList>;

/** One image of `GET /images`. */
export const ImageSummary = z.object({
  id: z.string(),
  /** `name:tag` references; empty for an untagged image. */
  tags: z.array(z.string()),
  size_mb: z.number(),
  created: z.string(),
});
export type ImageSummary = z.infer<typeof ImageSummary>;

/** Answer of `GET /images`. */
export const ImageList = z.object({ images: z.array(ImageSummary) });
export type ImageList = z.infer<typeof ImageList>;

/** Path parameters of `GET /containers/:name/logs`. */
export const ContainerLogsParams = z.object({ name: ContainerName });
export type ContainerLogsParams = z.infer<typeof ContainerLogsParams>;

/** Query of `GET /containers/:name/logs`. */
export const ContainerLogsQuery = z.object({
  /** How many of the last lines to return. */
  tail: z.coerce.number().int().min(0).max(10_000).default(100),
});
export type ContainerLogsQuery = z.infer<typeof ContainerLogsQuery>;

/** Answer of `GET /containers/:name/logs`: stdout and stderr lines, interleaved in the order they were written. */
export const ContainerLogs = z.object({ logs: z.array(z.string()) });
export type ContainerLogs = z.infer<typeof ContainerLogs>;
