import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../../../controller/config.js';
import { createKubeApi, kubeConfigFor } from '../../../../../controller/runtime/kubernetes/kube-api.js';
import { LeaseLeadership } from '../../../../../controller/runtime/kubernetes/leader-lease.js';
import { FakeKubeApi } from '../../../../helpers/fake-kube-api.js';
import { NAMESPACE } from '../../../../helpers/kube-controller.js';

describe('leader Lease between replicas (fake API server)', () => {
  let fake: FakeKubeApi;
  let url: string;
  const replicas: LeaseLeadership[] = [];
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  beforeEach(async () => {
    fake = new FakeKubeApi();
    url = await fake.start();
  });
  afterEach(async () => {
    for (const r of replicas.splice(0)) await r.stop();
    await fake.close();
  });

  const replica = (name: string, leaseSeconds = '60'): { lease: LeaseLeadership; changes: boolean[] } => {
    const config = parseControllerConfig({ HOSTNAME: name, LEADER_LEASE_SECONDS: leaseSeconds, SESSION_NAMESPACE: NAMESPACE });
    const lease = new LeaseLeadership(createKubeApi(NAMESPACE, kubeConfigFor(url, fake.token)), config.kubernetes, pino({ level: 'silent' }), () => clock.now);
    replicas.push(lease);
    return { lease, changes: [] };
  };
  const holder = () => (fake.get('leases', NAMESPACE, 'runner-controller')?.spec as { holderIdentity?: string }).holderIdentity;

  it('lets exactly one of two replicas that start together lead', async () => {
    const a = replica('a');
    const b = replica('b');
    await Promise.all([a.lease.start((l) => a.changes.push(l)), b.lease.start((l) => b.changes.push(l))]);
    expect([a.lease.isLeader(), b.lease.isLeader()].filter(Boolean)).toHaveLength(1);
    expect(holder()).toBe(a.lease.isLeader() ? 'a' : 'b');
  });

  it('takes over a lease its holder stopped renewing once a whole duration has passed, not before', async () => {
    const a = replica('a');
    await a.lease.start((l) => a.changes.push(l));
    expect(a.lease.isLeader()).toBe(true);
    // A crashes: it renews no more (its timer is real time, 20 s away) and hands nothing over.
    clock.now += 59_000;
    const b = replica('b');
    await b.lease.start((l) => b.changes.push(l));
    expect(b.lease.isLeader()).toBe(false);
    await b.lease.stop();
    clock.now += 2_000;
    const c = replica('c');
    await c.lease.start((l) => c.changes.push(l));
    expect(c.lease.isLeader()).toBe(true);
    expect(holder()).toBe('c');
    expect((fake.get('leases', NAMESPACE, 'runner-controller')?.spec as { leaseTransitions?: number }).leaseTransitions).toBe(1);
  });

  it('hands the lease over at once when its holder stops', async () => {
    const a = replica('a', '1');
    const b = replica('b', '1');
    await a.lease.start((l) => a.changes.push(l));
    await b.lease.start((l) => b.changes.push(l));
    expect(b.lease.isLeader()).toBe(false);
    await a.lease.stop();
    expect(a.changes).toEqual([true, false]);
    // B's next round (a third of the duration) finds the lease free, without the clock moving.
    for (let i = 0; i < 100 && !b.lease.isLeader(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(b.changes).toEqual([true]);
    expect(holder()).toBe('b');
  });
});
