import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, request } from 'undici';

/** A real etcd and kube-apiserver from envtest binaries (KUBEBUILDER_ASSETS), with no nodes: API behaviour only. */
export interface EnvtestApiServer {
  url: string;
  config: KubeConfig;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function start(binary: string, args: string[], log: string[]): ChildProcess {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer): void => {
    log.push(chunk.toString('utf8'));
    if (log.length > 200) log.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

/** Starts etcd and kube-apiserver from `assets` (a folder with both binaries), with `featureGates` if given. */
export async function startEnvtestApiServer(assets: string, featureGates?: string): Promise<EnvtestApiServer> {
  const dir = await mkdtemp(join(tmpdir(), 'envtest-'));
  const token = randomBytes(24).toString('hex');
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  await writeFile(join(dir, 'sa.pub'), publicKey);
  await writeFile(join(dir, 'sa.key'), privateKey);
  await writeFile(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`);
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const log: string[] = [];
  const etcd = start(join(assets, 'etcd'), [
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
  ], log);
  const apiserver = start(join(assets, 'kube-apiserver'), [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--secure-port=${apiPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--authorization-mode=AlwaysAllow',
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    // No controller-manager makes a namespace's default ServiceAccount, which this admission plugin would wait for.
    '--disable-admission-plugins=ServiceAccount',
    ...(featureGates ? [`--feature-gates=${featureGates}`] : []),
  ], log);
  const url = `https://127.0.0.1:${apiPort}`;
  const config = new KubeConfig();
  config.loadFromOptions({
    // The API server's certificate is one it made for itself at start.
    clusters: [{ name: 'envtest', server: url, skipTLSVerify: true }],
    users: [{ name: 'admin', token }],
    contexts: [{ name: 'envtest', cluster: 'envtest', user: 'admin' }],
    currentContext: 'envtest',
  });
  const stop = async (): Promise<void> => {
    apiserver.kill('SIGTERM');
    etcd.kill('SIGTERM');
    await sleep(500);
    await rm(dir, { recursive: true, force: true });
  };
  const selfSigned = new Agent({ connect: { rejectUnauthorized: false } });
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (apiserver.exitCode !== null || etcd.exitCode !== null) {
      await stop();
      throw new Error(`envtest exited:\n${log.join('').slice(-4000)}`);
    }
    const ready = await request(`${url}/readyz`, { headers: { authorization: `Bearer ${token}` }, dispatcher: selfSigned, headersTimeout: 2_000 })
      .then(async (res) => {
        await res.body.dump();
        return res.statusCode === 200;
      })
      .catch(() => false);
    if (ready) return { url, config, stop };
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`kube-apiserver not ready within 60 s:\n${log.join('').slice(-4000)}`);
    }
    await sleep(500);
  }
}
