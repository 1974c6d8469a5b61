import { z } from 'zod';
import { EnvMap } from './common.js';

// execve takes C strings: a NUL byte would silently cut an argument or a variable short.
const hasNoNul = (value: string): boolean => !value.includes('\0');

/** `POST /exec` and `POST /exec/stream`: a command started directly (no shell unless it is one) as the learner. */
export const ExecRequest = z.object({
  /** The program and its arguments, e.g. `["ls", "-la"]`; the program is looked up in the PATH. */
  command: z
    .array(z.string().refine(hasNoNul, 'an argument contains a NUL byte'))
    .min(1, 'command needs at least the program')
    .refine((argv) => argv[0] !== '', 'the program (command[0]) is empty'),
  /** Working folder: `/workspace/...` (or relative to it), or another absolute folder; the workspace by default. */
  workdir: z.string().min(1).refine(hasNoNul, 'workdir contains a NUL byte').optional(),
  /** Variables added to the learner's clean environment (never the agent's own). */
  env: EnvMap.refine((env) => Object.values(env).every(hasNoNul), 'an env value contains a NUL byte').optional(),
  /** Seconds before the whole process tree is killed; default and maximum are the agent's exec timeout. */
  timeout_seconds: z.number().positive().optional(),
  /** Written to the process's stdin, which is then closed; without it stdin is /dev/null. */
  stdin: z.string().optional(),
});
export type ExecRequest = z.infer<typeof ExecRequest>;

/** Answer of `POST /exec`. */
export const ExecResult = z.object({
  /** The exit status; 128+N when killed by signal N, 124 after a timeout, 127 when the program does not exist, 126 when it cannot be executed. */
  exit_code: z.number().int(),
  /** Lines of stdout and stderr interleaved in the order they arrived. */
  logs: z.array(z.string()),
  stdout: z.string(),
  stderr: z.string(),
  elapsed_seconds: z.number(),
  /** The timeout expired and the process tree was killed. */
  timed_out: z.boolean(),
  /** Output went past the agent's limit; the rest was dropped while the process kept running. */
  truncated: z.boolean(),
});
export type ExecResult = z.infer<typeof ExecResult>;

/** A chunk of output as it arrived (UTF-8 characters are never split across frames). */
export const ExecOutputFrame = z.object({ type: z.enum(['stdout', 'stderr']), data: z.string() });
export type ExecOutputFrame = z.infer<typeof ExecOutputFrame>;

/** Sent after `keepaliveSeconds` without output, so proxies and clients know the stream is alive. */
export const ExecHeartbeatFrame = z.object({ type: z.literal('heartbeat') });
export type ExecHeartbeatFrame = z.infer<typeof ExecHeartbeatFrame>;

/** The last frame of a stream. */
export const ExecExitFrame = z.object({
  type: z.literal('exit'),
  exit_code: z.number().int(),
  timed_out: z.boolean(),
  truncated: z.boolean(),
  elapsed_seconds: z.number(),
});
export type ExecExitFrame = z.infer<typeof ExecExitFrame>;

/** One line of the `application/x-ndjson` answer of `POST /exec/stream`. */
export const ExecFrame = z.discriminatedUnion('type', [ExecOutputFrame, ExecHeartbeatFrame, ExecExitFrame]);
export type ExecFrame = z.infer<typeof ExecFrame>;
