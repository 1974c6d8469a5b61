import type { ErrorBody, ErrorCode } from './types.js';

/** Every failed call: the runner's error body (`code`, `message`, details) and the HTTP status. */
export class RunnerError extends Error {
  override readonly name = 'RunnerError';
  readonly code: ErrorCode;
  readonly status: number;
  /** The whole error body, e.g. `logs` of a failed build. */
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.body = body;
  }
}

/** The error of a failed response: its body when it is the runner's, else one made from the status. */
export async function errorOf(response: Response): Promise<RunnerError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    if (typeof body.code === 'string' && typeof body.message === 'string') return new RunnerError(response.status, body as ErrorBody);
  } catch {
    // Not JSON: a proxy in between answered.
  }
  const code: ErrorCode = response.status === 401 ? 'UNAUTHORIZED' : response.status >= 500 ? 'INTERNAL' : 'VALIDATION';
  return new RunnerError(response.status, { code, message: `HTTP ${response.status} ${text.slice(0, 200)}`.trim() });
}
