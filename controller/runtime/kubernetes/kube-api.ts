import { ApiException, CoordinationV1Api, CoreV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import { AppError } from '../../../shared/errors.js';

/** The parts of the Kubernetes API the runtime, its store and the leader lease use, for one namespace. */
export interface KubeApi {
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  watch: Watch;
  namespace: string;
}

/** Clients for a cluster: the one KUBECONFIG names, the pod's own service account in a cluster, or the given config. */
export function createKubeApi(namespace: string, config?: KubeConfig): KubeApi {
  const kc = config ?? loadDefaultConfig();
  return { core: kc.makeApiClient(CoreV1Api), coordination: kc.makeApiClient(CoordinationV1Api), watch: new Watch(kc), namespace };
}

// The library's own order: KUBECONFIG, then ~/.kube/config, then the in-cluster service account.
function loadDefaultConfig(): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (error) {
    throw new Error(`SESSION_RUNTIME=kubernetes: could not load the cluster's config from KUBECONFIG or the pod's service account: ${String(error)}`, { cause: error });
  }
  return kc;
}

/** A KubeConfig for one API server URL with a bearer token (tests, and anyone who wants no file). */
export function kubeConfigFor(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // The library refuses plain http unless told there is no TLS to verify; an https server is always verified.
    clusters: [{ name: 'cluster', server, skipTLSVerify: server.startsWith('http:') }],
    users: [{ name: 'runner', token }],
    contexts: [{ name: 'runner', cluster: 'cluster', user: 'runner' }],
    currentContext: 'runner',
  });
  return kc;
}

/** The HTTP status of a failed API call, or null when there was no answer. */
export function kubeStatus(error: unknown): number | null {
  return error instanceof ApiException ? error.code : null;
}

/** The API server's own message in a failed call's Status body. */
function kubeMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = typeof error.body === 'string' ? safeJson(error.body) : error.body;
    const message = (body as { message?: unknown } | null)?.message;
    return typeof message === 'string' ? message : `HTTP ${error.code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * A failed API call as the runtime's errors: the cluster unreachable is DOCKER_UNAVAILABLE and any other failure
 * DOCKER_ERROR, the codes clients already handle for "the engine" (the wire contract names no engine).
 */
export function toKubeError(error: unknown, action: string, code: 'DOCKER_ERROR' | 'SESSION_START_FAILED' = 'DOCKER_ERROR'): AppError {
  if (error instanceof AppError) return error;
  if (kubeStatus(error) === null) {
    return new AppError('DOCKER_UNAVAILABLE', `the Kubernetes API server is not reachable (${kubeMessage(error)})`, undefined, { cause: error });
  }
  return new AppError(code, `could not ${action}: ${kubeMessage(error)}`, undefined, { cause: error });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
