import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { Pod, Secret } from 'kubernetes-models/v1';

type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; uid?: string; creationTimestamp?: string };
  [key: string]: unknown;
};

type Resource = 'pods' | 'secrets' | 'leases';
interface Event {
  rv: number;
  resource: Resource;
  namespace: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}
interface Watcher {
  resource: Resource;
  namespace: string;
  selector: string | null;
  res: ServerResponse;
}

const KIND: Record<Resource, { kind: string; apiVersion: string; validate: (o: KubeObject) => void }> = {
  pods: { kind: 'Pod', apiVersion: 'v1', validate: (o) => new Pod(o as never).validate() },
  secrets: { kind: 'Secret', apiVersion: 'v1', validate: (o) => new Secret(o as never).validate() },
  leases: { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', validate: (o) => new Lease(o as never).validate() },
};
const ROUTE = /^\/(?:api\/v1|apis\/coordination\.k8s\.io\/v1)\/namespaces\/([^/]+)\/(pods|secrets|leases)(?:\/([^/]+))?(\/log)?$/;

/**
 * An in-process stand-in for the Kubernetes API server's REST surface, as the runtime uses it: create, get, list and
 * watch (label selectors, resourceVersions), replace (409 on a stale resourceVersion), delete, 409 on a taken name,
 * 422 for an object the OpenAPI schema rejects, bearer auth. With `gatesOff` it drops `hostUsers` and `procMount`
 * from pods and still answers 201, as a real API server without those feature gates does.
 */
export class FakeKubeApi {
  readonly token = `fake-kube-token-${randomUUID()}`;
  /** Drop the fields of the ProcMountType and UserNamespacesSupport gates, silently. */
  gatesOff = false;
  /** Called for each new pod: resolves to its IP once "scheduled and running" (null: it stays Pending). */
  schedule: (pod: KubeObject) => Promise<string | null> = async () => null;
  /** Log lines per pod name. */
  readonly logs = new Map<string, string[]>();
  /** Every request, as `METHOD path`, for tests that check what was asked. */
  readonly requests: string[] = [];

  readonly #objects = new Map<string, KubeObject>();
  readonly #events: Event[] = [];
  readonly #watchers = new Set<Watcher>();
  #rv = 1;
  #server: Server | null = null;

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((error: unknown) => send(res, 500, status(500, 'InternalError', String(error))));
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  /** The stored objects of a resource in a namespace (what `kubectl get` would list). */
  list(resource: Resource, namespace: string): KubeObject[] {
    return [...this.#objects.entries()].filter(([k]) => k.startsWith(`${resource}/${namespace}/`)).map(([, o]) => structuredClone(o));
  }

  get(resource: Resource, namespace: string, name: string): KubeObject | undefined {
    const o = this.#objects.get(`${resource}/${namespace}/${name}`);
    return o ? structuredClone(o) : undefined;
  }

  /** Deletes an object behind the controller's back (as `kubectl delete` would). */
  remove(resource: Resource, namespace: string, name: string): void {
    const key = `${resource}/${namespace}/${name}`;
    const object = this.#objects.get(key);
    if (!object) return;
    this.#objects.delete(key);
    this.#emit(resource, namespace, 'DELETED', object);
  }

  /** Changes a stored object (as another client would), with a new resourceVersion and a MODIFIED event. */
  update(resource: Resource, namespace: string, name: string, change: (o: KubeObject) => void): void {
    const key = `${resource}/${namespace}/${name}`;
    const object = this.#objects.get(key);
    if (!object) throw new Error(`no ${key}`);
    change(object);
    object.metadata.resourceVersion = String(++this.#rv);
    this.#emit(resource, namespace, 'MODIFIED', object);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    this.requests.push(`${req.method} ${url.pathname}`);
    if (req.headers.authorization !== `Bearer ${this.token}`) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    const match = ROUTE.exec(url.pathname);
    if (!match) return send(res, 404, status(404, 'NotFound', `the server could not find the requested resource`));
    const [, namespace = '', resource, name, log] = match as unknown as [string, string, Resource, string | undefined, string | undefined];
    const key = (n: string): string => `${resource}/${namespace}/${n}`;
    const body = req.method === 'POST' || req.method === 'PUT' ? ((await readJson(req)) as KubeObject) : null;

    if (req.method === 'GET' && name && log) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end((this.logs.get(name) ?? []).slice(-Number(url.searchParams.get('tailLines') ?? 1e9)).join('\n'));
      return;
    }
    if (req.method === 'GET' && name) {
      const object = this.#objects.get(key(name));
      return object ? send(res, 200, object) : send(res, 404, notFound(resource, name));
    }
    if (req.method === 'GET') {
      const selector = url.searchParams.get('labelSelector');
      if (url.searchParams.get('watch') === 'true') return this.#watch(res, resource, namespace, selector, Number(url.searchParams.get('resourceVersion') ?? 0));
      const items = this.list(resource, namespace).filter((o) => matches(o, selector));
      const limit = Number(url.searchParams.get('limit') ?? 0);
      return send(res, 200, {
        apiVersion: KIND[resource].apiVersion,
        kind: `${KIND[resource].kind}List`,
        metadata: { resourceVersion: String(this.#rv) },
        items: limit > 0 ? items.slice(0, limit) : items,
      });
    }
    if (req.method === 'POST' && body) {
      const invalid = this.#invalid(resource, body);
      if (invalid) return send(res, 422, status(422, 'Invalid', `${KIND[resource].kind} "${body.metadata?.name}" is invalid: ${invalid}`));
      if (this.#objects.has(key(body.metadata.name))) {
        return send(res, 409, status(409, 'AlreadyExists', `${resource} "${body.metadata.name}" already exists`));
      }
      const object = this.#admit(resource, namespace, body);
      this.#objects.set(key(object.metadata.name), object);
      this.#emit(resource, namespace, 'ADDED', object);
      if (resource === 'pods') void this.#run(namespace, object.metadata.name);
      return send(res, 201, object);
    }
    if (req.method === 'PUT' && name && body) {
      const current = this.#objects.get(key(name));
      if (!current) return send(res, 404, notFound(resource, name));
      if (body.metadata?.resourceVersion !== current.metadata.resourceVersion) {
        return send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
      }
      const invalid = this.#invalid(resource, body);
      if (invalid) return send(res, 422, status(422, 'Invalid', `${KIND[resource].kind} "${name}" is invalid: ${invalid}`));
      const object = this.#admit(resource, namespace, body, current);
      this.#objects.set(key(name), object);
      this.#emit(resource, namespace, 'MODIFIED', object);
      return send(res, 200, object);
    }
    if (req.method === 'DELETE' && name) {
      const object = this.#objects.get(key(name));
      if (!object) return send(res, 404, notFound(resource, name));
      this.remove(resource, namespace, name);
      return send(res, 200, object);
    }
    send(res, 405, status(405, 'MethodNotAllowed', `${req.method} is not supported here`));
  }

  #invalid(resource: Resource, body: KubeObject): string | null {
    try {
      KIND[resource].validate(body);
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  // What the API server stores: its own metadata, Secret stringData as data, gated fields dropped, status kept.
  #admit(resource: Resource, namespace: string, body: KubeObject, current?: KubeObject): KubeObject {
    const object = structuredClone(body);
    object.apiVersion = KIND[resource].apiVersion;
    object.kind = KIND[resource].kind;
    object.metadata = {
      ...object.metadata,
      namespace,
      uid: current?.metadata.uid ?? randomUUID(),
      creationTimestamp: current?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      resourceVersion: String(++this.#rv),
    };
    if (resource === 'secrets' && object.stringData) {
      const data = { ...(object.data as Record<string, string> | undefined) };
      for (const [k, v] of Object.entries(object.stringData as Record<string, string>)) data[k] = Buffer.from(v).toString('base64');
      object.data = data;
      delete object.stringData;
    }
    if (resource === 'pods') {
      const spec = object.spec as { hostUsers?: boolean; containers: { securityContext?: { procMount?: string } }[] };
      if (this.gatesOff) {
        delete spec.hostUsers;
        for (const c of spec.containers) delete c.securityContext?.procMount;
      }
      object.status = current?.status ?? { phase: 'Pending' };
    }
    return object;
  }

  // The scheduler and kubelet: the pod runs once the test's hook gives it an IP.
  async #run(namespace: string, name: string): Promise<void> {
    const pod = this.#objects.get(`pods/${namespace}/${name}`);
    if (!pod) return;
    const ip = await this.schedule(structuredClone(pod));
    if (!ip || !this.#objects.has(`pods/${namespace}/${name}`)) return;
    this.update('pods', namespace, name, (o) => {
      o.status = { phase: 'Running', podIP: ip, containerStatuses: [{ name: 'session', ready: true, restartCount: 0, image: '', imageID: '', state: { running: {} } }] };
    });
  }

  #watch(res: ServerResponse, resource: Resource, namespace: string, selector: string | null, since: number): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const watcher: Watcher = { resource, namespace, selector, res };
    for (const e of this.#events) if (e.rv > since) this.#deliver(watcher, e);
    this.#watchers.add(watcher);
    res.on('close', () => this.#watchers.delete(watcher));
  }

  #emit(resource: Resource, namespace: string, type: Event['type'], object: KubeObject): void {
    const event: Event = { rv: this.#rv, resource, namespace, type, object: structuredClone(object) };
    this.#events.push(event);
    for (const w of this.#watchers) this.#deliver(w, event);
  }

  #deliver(w: Watcher, e: Event): void {
    if (w.resource !== e.resource || w.namespace !== e.namespace || !matches(e.object, w.selector)) return;
    w.res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
  }
}

// Equality (`a=b`, `a==b`), inequality (`a!=b`), existence (`a`) and absence (`!a`), comma-separated (all must hold).
function matches(object: KubeObject, selector: string | null): boolean {
  const labels = object.metadata.labels ?? {};
  for (const term of (selector ?? '').split(',').map((t) => t.trim()).filter(Boolean)) {
    const ne = /^([^!=]+)!=(.*)$/.exec(term);
    const eq = /^([^!=]+)==?(.*)$/.exec(term);
    if (ne) {
      if (labels[ne[1]!] === ne[2]) return false;
    } else if (eq) {
      if (labels[eq[1]!] !== eq[2]) return false;
    } else if (term.startsWith('!')) {
      if (term.slice(1) in labels) return false;
    } else if (!(term in labels)) return false;
  }
  return true;
}

function status(code: number, reason: string, message: string): object {
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', message, reason, code };
}

function notFound(resource: string, name: string): object {
  return status(404, 'NotFound', `${resource} "${name}" not found`);
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}
