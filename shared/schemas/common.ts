import { z } from 'zod';

/** Environment variables handed to a learner process: POSIX names only. */
export const EnvMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'invalid environment variable name').max(256), z.string().max(32_768));
