import type { V1Secret } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../../shared/errors.js';
import type { KubernetesConfig } from '../../config.js';
import type { AgentEndpoint } from '../../proxy/agent-target.js';
import { PoolId, type PoolState, type RecordOf, type SessionState } from '../../sessions/session-store.js';
import type { StateStore } from '../../sessions/state-store.js';
import { Label } from '../labels.js';
import type { SessionOwner } from '../session-runtime.js';
import { kubeStatus, toKubeError, type KubeApi } from './kube-api.js';
import { secretName } from './kube-names.js';
import { Annotation, ownSelector, sessionSecret, TOKEN_KEY } from './session-pod.js';
import { WatchCache, watchedSecrets } from './watch-cache.js';

// The same shapes as the state files, read back from annotations.
const SessionStateJson = z.object({
  session_id: z.string(),
  instance: z.string(),
  container_name: z.string(),
  created_at: z.iso.datetime(),
  expires_at: z.iso.datetime(),
  pool_id: PoolId.optional(),
});
const PoolStateJson = z.object({ pool_id: PoolId, instance: z.string(), container_name: z.string(), created_at: z.iso.datetime() });

/**
 * The controller's state in the API server: one Secret per owner holds the agent's token (the pod mounts it) and,
 * in annotations, the session's state or the pool member's record. A claim labels the member's Secret with the
 * session's id, so every replica finds a session's state, token and claim with one label selector. Reads come
 * from a watch-fed cache of the Secrets (a proxied request costs no API call); a name the cache lacks is asked for.
 */
export class KubernetesStateStore implements StateStore {
  // A Secret volume is refreshed by the kubelet's periodic sync, not at once: a claimed member keeps its token.
  readonly tokensTakeEffectAtOnce = false;
  readonly #cache: WatchCache<V1Secret>;

  constructor(
    private readonly api: KubeApi,
    private readonly config: KubernetesConfig,
    private readonly instance: string,
    /** Records younger than this are left out of list(): another replica may be starting their pod. */
    private readonly settleMs: number,
    log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {
    this.#cache = new WatchCache(api, watchedSecrets(api), ownSelector(instance), log);
  }

  /** Stops watching the API server. */
  close(): void {
    this.#cache.close();
  }

  agentEndpoint(_owner: SessionOwner, address: string | null): AgentEndpoint | null {
    return address ? { kind: 'tcp', host: address, port: this.config.agentPort } : null;
  }

  async ensureRoot(): Promise<void> {}

  async create<O extends SessionOwner>(owner: O, agentToken: string, record: RecordOf<O>): Promise<void> {
    const annotation = owner.kind === 'pool' ? Annotation.poolRecord : Annotation.state;
    const body = sessionSecret(owner, this.instance, agentToken, { [annotation]: JSON.stringify(record) });
    try {
      this.#cache.put(await this.api.core.createNamespacedSecret({ namespace: this.api.namespace, body }));
    } catch (error) {
      if (kubeStatus(error) === 409) throw new AppError('SESSION_EXISTS', `a Secret named ${body.metadata!.name} already exists`);
      throw toKubeError(error, 'create the session Secret', 'SESSION_START_FAILED');
    }
  }

  async write(state: SessionState): Promise<void> {
    const secret = await this.#sessionSecret(state.session_id);
    if (!secret) throw new AppError('SESSION_NOT_FOUND', `no Secret of session ${state.session_id}`);
    await this.#replace(secret, { [Annotation.state]: JSON.stringify(state) });
  }

  async read(sessionId: string): Promise<SessionState | null> {
    return parse((await this.#sessionSecret(sessionId))?.metadata?.annotations?.[Annotation.state], SessionStateJson);
  }

  async writeToken(owner: SessionOwner, agentToken: string): Promise<void> {
    const secret = await this.#ownerSecret(owner);
    if (!secret) throw new AppError('SESSION_NOT_FOUND', 'no Secret to write the token to');
    secret.data = { ...secret.data, [TOKEN_KEY]: Buffer.from(agentToken).toString('base64') };
    await this.#replace(secret, {});
  }

  async readToken(owner: SessionOwner): Promise<string | null> {
    const data = (await this.#ownerSecret(owner))?.data?.[TOKEN_KEY];
    return data ? Buffer.from(data, 'base64').toString('utf8').trim() || null : null;
  }

  async remove(owner: SessionOwner): Promise<void> {
    // Only this controller's: a Secret of that name may be another instance's in a shared namespace.
    const names = new Set<string>();
    if (await this.#get(secretName(owner))) names.add(secretName(owner));
    // A session's record may be a claimed member's Secret: it goes with the session.
    if (owner.kind === 'session') for (const s of await this.#list(Label.sessionId, owner.sessionId)) names.add(s.metadata!.name!);
    for (const name of names) {
      try {
        await this.api.core.deleteNamespacedSecret({ name, namespace: this.api.namespace });
      } catch (error) {
        if (kubeStatus(error) !== 404) throw toKubeError(error, `remove Secret ${name}`);
      }
      this.#cache.forget(name);
    }
  }

  async readPoolMember(poolId: string): Promise<PoolState | null> {
    return parse((await this.#get(secretName({ kind: 'pool', poolId })))?.metadata?.annotations?.[Annotation.poolRecord], PoolStateJson);
  }

  async claimPoolMember(state: SessionState & { pool_id: string }): Promise<void> {
    const secret = await this.#get(secretName({ kind: 'pool', poolId: state.pool_id }));
    if (!secret) throw new AppError('SESSION_NOT_FOUND', `no Secret of pool member ${state.pool_id}`);
    secret.metadata!.labels = { ...secret.metadata!.labels, [Label.sessionId]: state.session_id };
    // One write with the resourceVersion read: two replicas claiming one member cannot both succeed.
    await this.#replace(secret, { [Annotation.state]: JSON.stringify(state) });
  }

  // Nothing moves on a claim: the Secret keeps its name and gains a label.
  async settleClaim(): Promise<void> {}

  async readClaim(poolId: string): Promise<SessionState | null> {
    return parse((await this.#get(secretName({ kind: 'pool', poolId })))?.metadata?.annotations?.[Annotation.state], SessionStateJson);
  }

  async poolClaims(): Promise<Map<string, string>> {
    const claims = new Map<string, string>();
    for (const secret of await this.#list(Label.poolId)) {
      const state = parse(secret.metadata?.annotations?.[Annotation.state], SessionStateJson);
      const poolId = secret.metadata?.labels?.[Label.poolId];
      if (state && poolId) claims.set(poolId, state.session_id);
    }
    return claims;
  }

  async list(): Promise<SessionOwner[]> {
    const owners: SessionOwner[] = [];
    for (const secret of await this.#list()) {
      const created = Date.parse(String(secret.metadata?.creationTimestamp ?? ''));
      if (!Number.isNaN(created) && this.now() - created < this.settleMs) continue;
      const labels = secret.metadata?.labels ?? {};
      const poolId = labels[Label.poolId];
      const sessionId = labels[Label.sessionId];
      if (poolId) owners.push({ kind: 'pool', poolId });
      else if (sessionId) owners.push({ kind: 'session', sessionId });
    }
    return owners;
  }

  // A session's own Secret, or the claimed member's that its id labels.
  async #sessionSecret(sessionId: string): Promise<V1Secret | null> {
    const own = await this.#get(secretName({ kind: 'session', sessionId }));
    if (own) return own;
    const [claimed] = await this.#list(Label.sessionId, sessionId);
    return claimed ?? null;
  }

  async #ownerSecret(owner: SessionOwner): Promise<V1Secret | null> {
    return owner.kind === 'session' ? this.#sessionSecret(owner.sessionId) : this.#get(secretName(owner));
  }

  // A copy: callers change it to write it back, and the cache must keep what the API server holds.
  async #get(name: string): Promise<V1Secret | null> {
    await this.#cache.sync();
    const cached = this.#cache.get(name);
    if (cached) return structuredClone(cached);
    try {
      // Another replica may have made it a moment ago: the API server, not the cache, says it does not exist.
      const secret = await this.api.core.readNamespacedSecret({ name, namespace: this.api.namespace });
      if (secret.metadata?.labels?.[Label.instance] !== this.instance) return null;
      this.#cache.put(secret);
      return structuredClone(secret);
    } catch (error) {
      if (kubeStatus(error) === 404) return null;
      throw toKubeError(error, `read Secret ${name}`);
    }
  }

  // The cached Secrets that carry `label` (with `value`, when given).
  async #list(label?: string, value?: string): Promise<V1Secret[]> {
    await this.#cache.sync();
    return this.#cache
      .values()
      .filter((s) => label === undefined || (value === undefined ? s.metadata?.labels?.[label] !== undefined : s.metadata?.labels?.[label] === value))
      .map((s) => structuredClone(s));
  }

  async #replace(secret: V1Secret, annotations: Record<string, string>): Promise<void> {
    secret.metadata!.annotations = { ...secret.metadata!.annotations, ...annotations };
    try {
      this.#cache.put(await this.api.core.replaceNamespacedSecret({ name: secret.metadata!.name!, namespace: this.api.namespace, body: secret }));
    } catch (error) {
      if (kubeStatus(error) === 409) throw new AppError('SESSION_EXISTS', `Secret ${secret.metadata!.name} changed meanwhile`);
      throw toKubeError(error, `update Secret ${secret.metadata!.name}`);
    }
  }
}

function parse<T>(json: string | undefined, schema: z.ZodType<T>): T | null {
  if (!json) return null;
  try {
    const parsed = schema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
