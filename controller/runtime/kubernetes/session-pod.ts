import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { SESSION_PATHS } from '../../../core/session-layout.js';
import type { ControllerConfig } from '../../config.js';
import { Label, MANAGED_BY } from '../labels.js';
import type { SessionOwner, SessionSpec } from '../session-runtime.js';
import { podName, secretName } from './kube-names.js';

/** Annotations on a session's pod and Secret: what labels cannot hold (times, names with any character). */
export const Annotation = {
  createdAt: Label.createdAt,
  expiresAt: Label.expiresAt,
  /** The container name the controller knows the pod by: a pool member's changes when a session claims it. */
  containerName: 'io.runner.container-name',
  /** On a Secret: the controller's state of the session (JSON), the counterpart of a session's state file. */
  state: 'io.runner.state',
  /** On a pool member's Secret: its own record (JSON). */
  poolRecord: 'io.runner.pool-record',
} as const;

/** The key of the agent's token in its Secret, and where the Secret is mounted (the agent reads the file). */
export const TOKEN_KEY = 'token';
const TOKEN_DIR = '/run/runner-secret';
const CONTAINER = 'session';
// Every session looks the same from inside, as under Docker.
const SESSION_HOSTNAME = 'session';

/** The labels that make a resource this controller's, and say whose. */
export function ownLabels(owner: SessionOwner, instance: string): Record<string, string> {
  const [key, id] = owner.kind === 'pool' ? [Label.poolId, owner.poolId] : [Label.sessionId, owner.sessionId];
  return { [Label.managedBy]: MANAGED_BY, [Label.instance]: instance, [key]: id };
}

/** The label selector of everything this controller owns. */
export function ownSelector(instance: string): string {
  return `${Label.managedBy}=${MANAGED_BY},${Label.instance}=${instance}`;
}

/** The Secret that carries an owner's agent token (the agent reads it from a file; only the controller knows it). */
export function sessionSecret(owner: SessionOwner, instance: string, token: string, annotations: Record<string, string>): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(owner), labels: ownLabels(owner, instance), annotations },
    type: 'Opaque',
    stringData: { [TOKEN_KEY]: token },
  };
}

/**
 * A session's pod: the least-privilege set of the Docker runtime spelled in Kubernetes (DESIGN.md, "No
 * --privileged"): its own user namespace, an unmasked /proc, SYS_ADMIN, the seccomp profile from the node, the tun
 * device, limits, and volumes for the workspace and the inner daemon's data. The agent also listens on TCP with
 * the Secret's token, which is how the controller reaches it from another node.
 */
export function sessionPod(spec: SessionSpec, config: ControllerConfig): V1Pod {
  const { kubernetes: kube } = config;
  const memory = String(config.memoryBytes);
  const cpu = String(config.cpus);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(spec.containerName),
      labels: ownLabels(spec.owner, config.instance),
      annotations: {
        [Annotation.containerName]: spec.containerName,
        [Annotation.createdAt]: spec.createdAt.toISOString(),
        ...(spec.expiresAt ? { [Annotation.expiresAt]: spec.expiresAt.toISOString() } : {}),
      },
    },
    spec: {
      hostname: SESSION_HOSTNAME,
      // Root in the session is not root on the node; it is also what lets procMount Unmasked be allowed.
      hostUsers: false,
      // Sessions never talk to the API server, and learn nothing about the cluster's services.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // As Docker's on-failure: a crashed agent comes back, a session the controller removes does not.
      restartPolicy: 'OnFailure',
      securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: kube.seccompProfile } },
      containers: [
        {
          name: CONTAINER,
          image: config.sessionImage,
          imagePullPolicy: 'IfNotPresent',
          env: [
            { name: 'AGENT_SOCKET', value: SESSION_PATHS.agentSocket },
            { name: 'AGENT_TOKEN_FILE', value: `${TOKEN_DIR}/${TOKEN_KEY}` },
            { name: 'AGENT_LISTEN', value: `0.0.0.0:${kube.agentPort}` },
            ...(config.registryMirror ? [{ name: 'AGENT_REGISTRY_MIRROR', value: config.registryMirror }] : []),
          ],
          ports: [{ name: 'agent', containerPort: kube.agentPort, protocol: 'TCP' }],
          resources: { limits: { memory, cpu }, requests: { memory, cpu } },
          securityContext: {
            privileged: false,
            // rootlesskit mounts and makes namespaces for the inner daemon.
            capabilities: { add: ['SYS_ADMIN'] },
            // systempaths=unconfined: the inner runc mounts a fresh procfs.
            procMount: 'Unmasked',
          },
          volumeMounts: [
            { name: 'workspace', mountPath: SESSION_PATHS.workspace },
            { name: 'docker-data', mountPath: SESSION_PATHS.dockerData },
            { name: 'agent-run', mountPath: SESSION_PATHS.agentDir },
            { name: 'agent-token', mountPath: TOKEN_DIR, readOnly: true },
            { name: 'tun', mountPath: '/dev/net/tun' },
          ],
        },
      ],
      volumes: [
        { name: 'workspace', emptyDir: {} },
        // A volume on the inner daemon's data root: native overlay2 works on it.
        { name: 'docker-data', emptyDir: {} },
        { name: 'agent-run', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
        { name: 'agent-token', secret: { secretName: secretName(spec.owner), defaultMode: 0o400 } },
        // slirp4netns gives the inner daemon its network through a tap device.
        { name: 'tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } },
      ],
    },
  };
}

/**
 * What a cluster without the ProcMountType or UserNamespacesSupport feature gates silently drops from a pod: the
 * names of the fields that did not survive, none when the pod is as asked.
 */
export function droppedSecurityFields(pod: V1Pod): string[] {
  const dropped: string[] = [];
  if (pod.spec?.hostUsers !== false) dropped.push('spec.hostUsers (feature gate UserNamespacesSupport)');
  const container = pod.spec?.containers.find((c) => c.name === CONTAINER);
  if (container?.securityContext?.procMount !== 'Unmasked') dropped.push('securityContext.procMount (feature gate ProcMountType)');
  return dropped;
}
