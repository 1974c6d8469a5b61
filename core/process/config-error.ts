import type { z } from 'zod';

/** Thrown for a bad environment; the process prints its one-line message and exits with code 2. */
export class ConfigError extends Error {}

/** Parses the environment with a process's schema; the first problem becomes a ConfigError naming the variable. */
export function parseEnvironment<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid configuration: ${issue.path.join('.') || 'environment'}: ${issue.message}`);
  }
  return parsed.data;
}
