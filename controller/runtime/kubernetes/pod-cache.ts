import type { V1Pod } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import { toKubeError, type KubeApi } from './kube-api.js';

const REWATCH_MS = 1_000;

/**
 * The controller's pods as the API server last told it: listed once, then kept current by a watch from the list's
 * resourceVersion (re-listed when the watch ends). Writes put what the API server answered, so a replica reads its
 * own writes before their events arrive.
 */
export class PodCache {
  readonly #pods = new Map<string, V1Pod>();
  #synced: Promise<void> | null = null;
  #watch: AbortController | null = null;
  #rewatch: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly api: KubeApi,
    private readonly selector: string,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Lists the pods the first time (and again after a watch ended); a failed list is tried again on the next call. */
  async sync(): Promise<void> {
    this.#synced ??= this.#listAndWatch().catch((error: unknown) => {
      this.#synced = null;
      throw error;
    });
    await this.#synced;
  }

  pods(): V1Pod[] {
    return [...this.#pods.values()];
  }

  get(name: string): V1Pod | undefined {
    return this.#pods.get(name);
  }

  put(pod: V1Pod): void {
    if (pod.metadata?.name) this.#pods.set(pod.metadata.name, pod);
  }

  forget(name: string): void {
    this.#pods.delete(name);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#rewatch);
    this.#watch?.abort();
  }

  async #listAndWatch(): Promise<void> {
    const { core, namespace, watch } = this.api;
    let list;
    try {
      list = await core.listNamespacedPod({ namespace, labelSelector: this.selector });
    } catch (error) {
      throw toKubeError(error, 'list session pods');
    }
    this.#pods.clear();
    for (const pod of list.items) this.put(pod);
    if (this.#closed) return;
    this.#watch = await watch.watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector: this.selector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (phase: string, pod: V1Pod) => {
        if (phase === 'DELETED') this.forget(pod.metadata?.name ?? '');
        else if (phase === 'ADDED' || phase === 'MODIFIED') this.put(pod);
      },
      (err: unknown) => this.#ended(err),
    );
  }

  // A watch ends (a timeout, the server gone, its resourceVersion too old): list again and watch from there.
  #ended(err: unknown): void {
    if (this.#closed) return;
    if (err) this.log.debug({ err }, 'pod watch ended; listing again');
    this.#synced = null;
    this.#rewatch = setTimeout(() => {
      void this.sync().catch((error: unknown) => this.log.warn({ err: error }, 'could not list session pods'));
    }, REWATCH_MS).unref();
  }
}
