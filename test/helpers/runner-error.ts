import { RunnerError } from '../../client/src/index.js';

/**
 * The RunnerError a client call fails with (the client's one error class), for assertions on its `code`, `status`
 * and `body`; any other outcome fails the test with what happened instead.
 */
export async function runnerError(call: Promise<unknown>): Promise<RunnerError> {
  const outcome = await call.then(
    (value: unknown) => new Error(`expected a RunnerError, the call answered ${JSON.stringify(value)}`),
    (reason: unknown) => reason,
  );
  if (outcome instanceof RunnerError) return outcome;
  throw outcome instanceof Error ? outcome : new Error(`expected a RunnerError, the call failed with ${String(outcome)}`);
}
