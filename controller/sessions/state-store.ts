import type { AgentEndpoint } from '../proxy/agent-target.js';
import type { SessionOwner } from '../runtime/session-runtime.js';
import type { PoolState, RecordOf, SessionState } from './session-store.js';

/**
 * What the controller keeps beside each session and pool member that the runtime's labels cannot hold: the agent's
 * token, an extended expiry, which session claimed which pool member. A host folder per owner on Docker
 * (SessionStore); Secrets in the API server on Kubernetes, so that no replica keeps state of its own.
 */
export interface StateStore {
  /** Whether a token written for a running agent takes effect at once (a claim then gives the member a new one). */
  readonly tokensTakeEffectAtOnce: boolean;
  /** Where the owner's agent is dialled, given its session's address; null while that is not known. */
  agentEndpoint(owner: SessionOwner, address: string | null): AgentEndpoint | null;
  /** The host folder mounted into the session, on runtimes that mount one. */
  agentDir?(owner: SessionOwner): string;
  ensureRoot(): Promise<void>;
  /** Records a new owner with its token and record, replacing a leftover of a failed run. */
  create<O extends SessionOwner>(owner: O, agentToken: string, record: RecordOf<O>): Promise<void>;
  write(state: SessionState): Promise<void>;
  read(sessionId: string): Promise<SessionState | null>;
  writeToken(owner: SessionOwner, agentToken: string): Promise<void>;
  readToken(owner: SessionOwner): Promise<string | null>;
  remove(owner: SessionOwner): Promise<void>;
  readPoolMember(poolId: string): Promise<PoolState | null>;
  /** Makes a pool member the session `state` names; the state written is the claim's commit point. */
  claimPoolMember(state: SessionState & { pool_id: string }): Promise<void>;
  /** Finishes a claim a crash interrupted (idempotent). */
  settleClaim(poolId: string, sessionId: string): Promise<void>;
  readClaim(poolId: string): Promise<SessionState | null>;
  /** Pool id → session id of every claim. */
  poolClaims(): Promise<Map<string, string>>;
  /** Every owner this controller keeps a record of (what the reaper weighs against the runtime). */
  list(): Promise<SessionOwner[]>;
  /** Lets go of what the store holds open (a watch). */
  close?(): void;
}
