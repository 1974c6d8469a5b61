import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseAgentConfig } from '../../../agent/config.js';
import { parseControllerConfig } from '../../../controller/config.js';
import { sessionPod, sessionSecret } from '../../../controller/runtime/kubernetes/session-pod.js';

const DIR = 'deploy/kubernetes';

// The OpenAPI schema of each kind the manifests use; an unknown kind fails the test rather than going unchecked.
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace,
  ServiceAccount,
  Role,
  RoleBinding,
  Deployment,
  Service,
  NetworkPolicy,
  DaemonSet,
  Pod,
  Secret,
  Lease,
};

type Manifest = { kind: string; metadata: { name: string; namespace?: string } };

async function manifests(): Promise<Array<{ file: string; doc: Manifest }>> {
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  const all: Array<{ file: string; doc: Manifest }> = [];
  for (const file of files) for (const doc of parseYaml(await readFile(join(DIR, file), 'utf8')) as Manifest[]) all.push({ file, doc });
  return all;
}

// As kubectl reads them: plain objects with the wire's field names (the Kubernetes client's loader renames some).
function parseYaml(text: string): unknown[] {
  return parseAllDocuments(text).map((d) => d.toJS() as unknown);
}

function validate(doc: { kind: string }): void {
  const Model = MODELS[doc.kind];
  if (!Model) throw new Error(`no schema for kind ${doc.kind}`);
  new Model(doc as never).validate();
}

describe('deploy/kubernetes', () => {
  it('validates every manifest against the Kubernetes OpenAPI schema', async () => {
    const all = await manifests();
    expect(all.length).toBeGreaterThan(8);
    for (const { file, doc } of all) expect(() => validate(doc), `${file}: ${doc.kind} ${doc.metadata.name}`).not.toThrow();
  });

  it('applies every manifest with kustomize, and ships the session image\'s own seccomp profile', async () => {
    const [kustomization] = parseYaml(await readFile(join(DIR, 'kustomization.yaml'), 'utf8')) as Array<{ resources: string[] }>;
    const files = (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization!.resources].sort()).toEqual(files.sort());
    expect(JSON.parse(await readFile(join(DIR, 'seccomp.json'), 'utf8'))).toEqual(JSON.parse(await readFile('image/seccomp.json', 'utf8')));
  });

  it('lets session pods be reached from controller pods only, and reach no private range', async () => {
    const policies = (await manifests()).filter(({ doc }) => doc.kind === 'NetworkPolicy').map(({ doc }) => doc as unknown as NetworkPolicy);
    const ingress = policies.flatMap((p) => p.spec?.ingress ?? []);
    expect(ingress.flatMap((r) => r.from ?? []).map((f) => f.podSelector?.matchLabels)).toEqual([{ 'app.kubernetes.io/name': 'runner-controller' }]);
    const blocks = policies.flatMap((p) => p.spec?.egress ?? []).flatMap((r) => r.to ?? []).flatMap((t) => (t.ipBlock ? [t.ipBlock] : []));
    expect(blocks.find((b) => b.cidr === '0.0.0.0/0')?.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']));
  });

  it('gives the controller no verb on anything but pods, their logs, Secrets and Leases in the sessions namespace', async () => {
    const roles = (await manifests()).filter(({ doc }) => doc.kind === 'Role' || doc.kind === 'ClusterRole').map(({ doc }) => doc as unknown as Role);
    expect(roles.map((r) => [r.kind, r.metadata?.namespace])).toEqual([['Role', 'runner-sessions']]);
    const granted = roles[0]!.rules!.flatMap((r) => r.resources!.flatMap((res) => r.verbs.map((v) => `${res}:${v}`)));
    expect(granted.sort()).toEqual(
      [
        ...['get', 'list', 'watch', 'create', 'update', 'delete'].map((v) => `pods:${v}`),
        'pods/log:get',
        ...['get', 'list', 'create', 'update', 'delete'].map((v) => `secrets:${v}`),
        ...['get', 'create', 'update'].map((v) => `leases:${v}`),
      ].sort(),
    );
  });
});

describe('what the Kubernetes runtime sends', () => {
  const config = parseControllerConfig({ SESSION_RUNTIME: 'kubernetes', SESSION_REGISTRY_MIRROR: 'https://mirror.example' });
  const createdAt = new Date('2026-01-01T00:00:00Z');

  it.each([
    ['a session', { kind: 'session', sessionId: 'abc' }, 'sess-abc'],
    ['a session whose id Kubernetes would not take as a name', { kind: 'session', sessionId: 'under_score-' }, 'sess-under_score-'],
    ['a warm pool member', { kind: 'pool', poolId: '0123456789ab' }, 'sess-warm.0123456789ab'],
  ] as const)('validates the pod and Secret of %s', (_, owner, containerName) => {
    const pod = sessionPod({ owner, containerName, createdAt, expiresAt: new Date(createdAt.getTime() + 1000) }, config);
    expect(() => new Pod(pod as never).validate()).not.toThrow();
    expect(pod.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(pod.spec).toMatchObject({ hostUsers: false, automountServiceAccountToken: false });
    expect(pod.spec?.containers[0]?.securityContext).toEqual({ privileged: false, capabilities: { add: ['SYS_ADMIN'] }, procMount: 'Unmasked' });
    expect(pod.spec?.volumes).toContainEqual({ name: 'tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } });
    const secret = sessionSecret(owner, config.instance, 't'.repeat(64), {});
    expect(() => new Secret(secret as never).validate()).not.toThrow();
    expect(pod.spec?.volumes).toContainEqual(expect.objectContaining({ secret: expect.objectContaining({ secretName: secret.metadata?.name }) }));
  });

  it('sets an environment the agent takes: its socket, TCP on the agent port, the token from the Secret\'s file', async () => {
    const pod = sessionPod({ owner: { kind: 'session', sessionId: 'env' }, containerName: 'sess-env', createdAt }, config);
    const env = Object.fromEntries((pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    const mount = pod.spec?.containers[0]?.volumeMounts?.find((m) => m.name === 'agent-token');
    expect(env.AGENT_TOKEN_FILE?.startsWith(`${mount?.mountPath}/`)).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), 'pod-env-'));
    try {
      await writeFile(join(dir, 'token'), `${'k'.repeat(64)}\n`);
      const agent = parseAgentConfig({ ...env, AGENT_TOKEN_FILE: join(dir, 'token') });
      expect(agent).toMatchObject({ listen: { host: '0.0.0.0', port: config.kubernetes.agentPort }, socket: env.AGENT_SOCKET, token: 'k'.repeat(64), registryMirror: 'https://mirror.example' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives two container names that differ only where Kubernetes is strict two pods', () => {
    const name = (containerName: string) => sessionPod({ owner: { kind: 'session', sessionId: 'x' }, containerName, createdAt }, config).metadata?.name;
    expect(name('sess-a_b')).not.toBe(name('sess-a-b'));
    expect(name('sess-warm_0123456789ab')).not.toBe(name('sess-warm.0123456789ab'));
  });
});
