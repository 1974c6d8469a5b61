import type { KubernetesListObject, KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { FastifyBaseLogger } from 'fastify';
import { toKubeError, type KubeApi } from './kube-api.js';

const REWATCH_MS = 1_000;

/** Which objects a cache holds: how to list them, and the path its watch follows. */
export interface WatchedKind<T extends KubernetesObject> {
  /** For messages: `session pods`, `session Secrets`. */
  what: string;
  /** `/api/v1/namespaces/<ns>/pods` */
  path: string;
  list: (labelSelector: string) => Promise<KubernetesListObject<T>>;
}

/**
 * The controller's objects of one kind as the API server last told it: listed once, then kept current by a watch
 * from the list's resourceVersion (listed again when the watch ends). Writes put what the API server answered, so
 * a replica reads its own writes before their events arrive.
 */
export class WatchCache<T extends KubernetesObject> {
  readonly #objects = new Map<string, T>();
  #synced: Promise<void> | null = null;
  #watch: AbortController | null = null;
  #rewatch: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly api: KubeApi,
    private readonly kind: WatchedKind<T>,
    private readonly selector: string,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Lists the objects the first time (and again after a watch ended); a failed list is tried again on the next call. */
  async sync(): Promise<void> {
    this.#synced ??= this.#listAndWatch().catch((error: unknown) => {
      this.#synced = null;
      throw error;
    });
    await this.#synced;
  }

  values(): T[] {
    return [...this.#objects.values()];
  }

  get(name: string): T | undefined {
    return this.#objects.get(name);
  }

  put(object: T): void {
    if (object.metadata?.name) this.#objects.set(object.metadata.name, object);
  }

  forget(name: string): void {
    this.#objects.delete(name);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#rewatch);
    this.#watch?.abort();
  }

  async #listAndWatch(): Promise<void> {
    let list: KubernetesListObject<T>;
    try {
      list = await this.kind.list(this.selector);
    } catch (error) {
      throw toKubeError(error, `list ${this.kind.what}`);
    }
    this.#objects.clear();
    for (const object of list.items) this.put(object);
    if (this.#closed) return;
    this.#watch = await this.api.watch.watch(
      this.kind.path,
      { labelSelector: this.selector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (phase: string, object: T) => {
        if (phase === 'DELETED') this.forget(object.metadata?.name ?? '');
        else if (phase === 'ADDED' || phase === 'MODIFIED') this.put(object);
      },
      (err: unknown) => this.#ended(err),
    );
  }

  // A watch ends (a timeout, the server gone, its resourceVersion too old): list again and watch from there.
  #ended(err: unknown): void {
    if (this.#closed) return;
    if (err) this.log.debug({ err }, `${this.kind.what} watch ended; listing again`);
    this.#synced = null;
    this.#rewatch = setTimeout(() => {
      void this.sync().catch((error: unknown) => this.log.warn({ err: error }, `could not list ${this.kind.what}`));
    }, REWATCH_MS).unref();
  }
}

/** The controller's pods in the sessions namespace. */
export function watchedPods(api: KubeApi): WatchedKind<V1Pod> {
  return {
    what: 'session pods',
    path: `/api/v1/namespaces/${api.namespace}/pods`,
    list: (labelSelector) => api.core.listNamespacedPod({ namespace: api.namespace, labelSelector }),
  };
}

/** The controller's Secrets in the sessions namespace. */
export function watchedSecrets(api: KubeApi): WatchedKind<V1Secret> {
  return {
    what: 'session Secrets',
    path: `/api/v1/namespaces/${api.namespace}/secrets`,
    list: (labelSelector) => api.core.listNamespacedSecret({ namespace: api.namespace, labelSelector }),
  };
}
