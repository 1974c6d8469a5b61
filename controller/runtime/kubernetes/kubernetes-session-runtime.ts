import type { V1Pod } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../../shared/errors.js';
import type { ControllerConfig } from '../../config.js';
import { Label, MANAGED_BY } from '../labels.js';
import type { KeptWorkspace, OwnedRuntimeSession, RuntimeSession, RuntimeVolume, SessionOwner, SessionRuntime, SessionSpec } from '../session-runtime.js';
import { kubeStatus, toKubeError, type KubeApi } from './kube-api.js';
import { podName } from './kube-names.js';
import { WatchCache, watchedPods } from './watch-cache.js';
import { Annotation, droppedSecurityFields, ownSelector, sessionPod } from './session-pod.js';

const PING_TIMEOUT_MS = 2_000;
const RUNNING_POLL_MS = 250;
// A container waiting for one of these will not start by waiting longer.
const HOPELESS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

/**
 * Sessions as pods in SESSION_NAMESPACE (SESSION_RUNTIME=kubernetes): one pod each, its volumes emptyDirs that live
 * and die with it, its agent token in a Secret (the Kubernetes session store's). Look-ups read a watch-fed cache
 * of the controller's pods; every replica of the controller sees the same pods.
 */
export class KubernetesSessionRuntime implements SessionRuntime {
  readonly shared = true;
  readonly #cache: WatchCache<V1Pod>;

  constructor(
    private readonly api: KubeApi,
    private readonly config: ControllerConfig,
    private readonly log: FastifyBaseLogger,
  ) {
    this.#cache = new WatchCache(api, watchedPods(api), ownSelector(config.instance), log);
  }

  async ping(): Promise<boolean> {
    const { core, namespace } = this.api;
    const listed = core.listNamespacedPod({ namespace, limit: 1, labelSelector: ownSelector(this.config.instance) }).then(
      () => true,
      () => false,
    );
    return Promise.race([listed, sleep(PING_TIMEOUT_MS).then(() => false)]);
  }

  async createSession(spec: SessionSpec): Promise<RuntimeSession> {
    const { core, namespace } = this.api;
    const body = sessionPod(spec, this.config);
    const name = body.metadata!.name!;
    this.log.debug({ owner: spec.owner, pod: name }, 'creating session pod');
    try {
      this.#cache.put(await core.createNamespacedPod({ namespace, body }));
    } catch (error) {
      if (kubeStatus(error) === 409) throw new AppError('SESSION_EXISTS', `a pod named ${name} already exists`);
      throw toKubeError(error, 'create the session pod', 'SESSION_START_FAILED');
    }
    // The API server answers 201 even when it dropped a field whose feature gate is off: read back what it kept.
    const stored = await this.#read(name);
    const dropped = stored ? droppedSecurityFields(stored) : [];
    if (dropped.length > 0) {
      await this.#delete(name);
      throw new AppError(
        'RUNTIME_FEATURE_MISSING',
        `the cluster dropped ${dropped.join(' and ')} from the session pod: sessions need Kubernetes 1.33 or later, or those feature gates on (docs/kubernetes.md)`,
        { dropped_fields: dropped },
      );
    }
    return this.#waitRunning(name);
  }

  async inspectSession(containerName: string): Promise<RuntimeSession | null> {
    await this.#cache.sync();
    const cached = this.#find(containerName);
    if (cached) return toRuntimeSession(cached);
    // Another replica may have made it a moment ago: the API server, not the cache, says it does not exist.
    const pod = await this.#read(podName(containerName));
    if (!pod || containerNameOf(pod) !== containerName) return null;
    // Another controller's (or a hand-made) pod under that name: reported, never adopted into the cache.
    if (!this.#ours(pod)) return toRuntimeSession(pod, false);
    this.#cache.put(pod);
    return toRuntimeSession(pod);
  }

  async listSessions(): Promise<OwnedRuntimeSession[]> {
    await this.#cache.sync();
    return this.#cache.values().flatMap((pod) => {
      const session = toRuntimeSession(pod);
      return session.owner ? [{ ...session, owner: session.owner }] : [];
    });
  }

  // The kubelet restarts a session's container by its restart policy; a pod that ended stays ended.
  async startSession(): Promise<void> {}

  async removeSession(owner: SessionOwner, containerName: string): Promise<void> {
    await this.#cache.sync();
    const pod = this.#find(containerName) ?? (await this.#read(podName(containerName)));
    if (!pod || !this.#ours(pod) || !sameOwner(ownerOf(pod.metadata?.labels), owner)) return;
    this.log.debug({ owner, pod: pod.metadata?.name }, 'removing session pod');
    await this.#delete(pod.metadata!.name!);
  }

  // A pod cannot be renamed: the name the controller knows it by is an annotation.
  async renameSession(containerName: string, newName: string): Promise<void> {
    const { core, namespace } = this.api;
    await this.#cache.sync();
    if (this.#find(newName) || (await this.#read(podName(newName)))) throw new AppError('SESSION_EXISTS', `a pod named ${newName} already exists`);
    const pod = this.#find(containerName) ?? (await this.#read(podName(containerName)));
    if (!pod) throw new AppError('DOCKER_ERROR', `no session pod ${containerName}`);
    pod.metadata!.annotations = { ...pod.metadata!.annotations, [Annotation.containerName]: newName };
    try {
      // With the resourceVersion read: a concurrent change makes this a 409 instead of a lost update.
      this.#cache.put(await core.replaceNamespacedPod({ name: pod.metadata!.name!, namespace, body: pod }));
    } catch (error) {
      throw toKubeError(error, `rename session pod ${containerName} to ${newName}`);
    }
  }

  // Volumes are emptyDirs: they go with their pod.
  async listVolumes(): Promise<RuntimeVolume[]> {
    return [];
  }

  async removeVolume(): Promise<void> {}

  // A pod's workspace is an emptyDir that goes with the pod: there is nothing to keep it in yet.
  async keepWorkspace(): Promise<KeptWorkspace | null> {
    throw new AppError('VALIDATION', 'keep_workspace is not supported with SESSION_RUNTIME=kubernetes: a pod\'s workspace goes with the pod');
  }

  async findKeptWorkspace(): Promise<KeptWorkspace | null> {
    return null;
  }

  async listKeptWorkspaces(): Promise<KeptWorkspace[]> {
    return [];
  }

  async tailLogs(containerName: string, lines: number): Promise<string[]> {
    const { core, namespace } = this.api;
    try {
      const pod = this.#find(containerName);
      const text = await core.readNamespacedPodLog({ name: pod?.metadata?.name ?? podName(containerName), namespace, tailLines: lines });
      return String(text).split('\n').filter((line) => line.length > 0).slice(-lines);
    } catch {
      return [];
    }
  }

  /** Stops watching the API server. */
  close(): void {
    this.#cache.close();
  }

  #ours(pod: V1Pod): boolean {
    const labels = pod.metadata?.labels;
    return labels?.[Label.managedBy] === MANAGED_BY && labels[Label.instance] === this.config.instance;
  }

  // A claimed pool member is known by the name in its annotation, not its pod's name.
  #find(containerName: string): V1Pod | undefined {
    return this.#cache.values().find((pod) => containerNameOf(pod) === containerName);
  }

  async #read(name: string): Promise<V1Pod | null> {
    const { core, namespace } = this.api;
    try {
      return await core.readNamespacedPod({ name, namespace });
    } catch (error) {
      if (kubeStatus(error) === 404) return null;
      throw toKubeError(error, `read session pod ${name}`);
    }
  }

  async #delete(name: string): Promise<void> {
    const { core, namespace } = this.api;
    try {
      await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 5 });
    } catch (error) {
      if (kubeStatus(error) !== 404) throw toKubeError(error, `remove session pod ${name}`);
    }
    this.#cache.forget(name);
  }

  // Scheduled, its image pulled, its container running with an IP: then the launcher asks the agent.
  async #waitRunning(name: string): Promise<RuntimeSession> {
    const deadline = performance.now() + this.config.sessionStartTimeoutSeconds * 1000;
    for (;;) {
      const pod = await this.#read(name);
      if (!pod) throw new AppError('SESSION_START_FAILED', `session pod ${name} vanished while starting`);
      this.#cache.put(pod);
      const phase = pod.status?.phase;
      if (phase === 'Running' && pod.status?.podIP) return toRuntimeSession(pod);
      if (phase === 'Failed' || phase === 'Succeeded') throw new AppError('SESSION_START_FAILED', `session pod ${name} ended while starting (${phase})`);
      const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason && HOPELESS.has(waiting.reason)) {
        throw new AppError('SESSION_START_FAILED', `session pod ${name} cannot start: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`);
      }
      if (performance.now() > deadline) throw new AppError('SESSION_START_FAILED', `session pod ${name} was not running within ${this.config.sessionStartTimeoutSeconds} s`);
      await sleep(RUNNING_POLL_MS);
    }
  }
}

function containerNameOf(pod: V1Pod): string {
  return pod.metadata?.annotations?.[Annotation.containerName] ?? pod.metadata?.name ?? '';
}

// A pool id wins, as on Docker: a claimed member's labels never name its session.
function ownerOf(labels: Record<string, string> | undefined): SessionOwner | null {
  const poolId = labels?.[Label.poolId];
  if (poolId) return { kind: 'pool', poolId };
  const sessionId = labels?.[Label.sessionId];
  return sessionId ? { kind: 'session', sessionId } : null;
}

function sameOwner(a: SessionOwner | null, b: SessionOwner): boolean {
  if (!a || a.kind !== b.kind) return false;
  return a.kind === 'pool' ? a.poolId === (b as { poolId: string }).poolId : a.sessionId === (b as { sessionId: string }).sessionId;
}

// `ours` false: a pod under that name that this controller does not own (owner null, as on Docker).
function toRuntimeSession(pod: V1Pod, ours = true): RuntimeSession {
  const annotations = pod.metadata?.annotations ?? {};
  return {
    owner: ours ? ownerOf(pod.metadata?.labels) : null,
    containerName: containerNameOf(pod),
    state: stateOf(pod),
    address: pod.status?.podIP || null,
    createdAt: dateOf(annotations[Annotation.createdAt]),
    expiresAt: dateOf(annotations[Annotation.expiresAt]),
  };
}

function stateOf(pod: V1Pod): RuntimeSession['state'] {
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed' || pod.metadata?.deletionTimestamp) return 'stopped';
  if (phase !== 'Running') return 'created';
  const status = pod.status?.containerStatuses?.[0];
  return status?.state?.waiting || status?.state?.terminated ? 'restarting' : 'running';
}

function dateOf(value: string | undefined): Date | null {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}
