import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootLogger } from '../../src/core/logger.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { eventually, exportSpec, joinSimulatedGateway, startGatewayReplica, startTestController, type SimulatedGateway, type TestController } from '../support/control-plane.js';

describe('controller (in process, memory store)', () => {
  let dir: string;
  let control: TestController;
  const gateways: SimulatedGateway[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-controller-'));
    control = await startTestController(new MemoryStore(), dir);
  });
  afterEach(async () => {
    for (const g of gateways.splice(0)) g.stop();
    await control.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('admits clusters with tokens and propagates exports to every gateway', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('payments')] });
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west', { exports: [exportSpec('payments'), exportSpec('orders')] });
    gateways.push(east, west);
    await eventually(() => west.catalog.data.services.get('default/payments')?.exporters.length === 2, 'both exporters of payments at us-west');
    await eventually(() => east.catalog.data.services.has('default/orders'), 'orders at us-east');
    expect([...east.catalog.data.bundles.keys()].sort()).toEqual(['us-east.acme.internal', 'us-west.acme.internal']);
    expect(east.catalog.data.clusters.get('us-west')?.state).toBe('active');

    west.exports.set([exportSpec('payments', { readyEndpoints: 0 })]);
    await eventually(() => !east.catalog.data.services.has('default/orders'), 'orders removed at us-east');
    await eventually(() => east.catalog.data.services.get('default/payments')?.exporters.find((e) => e.cluster === 'us-west')?.readyEndpoints === 0, 'ready count 0');
    // Revisions only ever grow, one apply each.
    const history = east.catalog.history.map((h) => h.revision);
    expect([...history].sort((a, b) => a - b)).toEqual(history);
    expect(new Set(history).size).toBe(history.length);

    const status = await control.admin.call.status({});
    expect(status.clusters.map((c) => [c.info?.name, c.connected])).toEqual([['us-east', true], ['us-west', true]]);
    expect(status.services.find((s) => s.name === 'payments')?.clusters.sort()).toEqual(['us-east', 'us-west']);
    await eventually(async () => (await control.admin.call.status({})).clusters.every((c) => c.appliedRevision === control.controller.catalog.revision), 'every gateway acked the latest revision');
  });

  it('reports export conflicts by the MCS rule and tells the exporting gateway', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('payments', { createdAtMs: 1000 })] });
    gateways.push(east);
    await eventually(() => east.catalog.data.services.has('default/payments'), 'payments exported');
    const verdicts: string[] = [];
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west', {
      exports: [exportSpec('payments', { createdAtMs: 2000, ports: [{ name: 'http', port: 9999, protocol: 'http' }] })],
      onVerdicts: (v) => verdicts.push(...v.map((x) => `${x.name}:${x.accepted}:${x.reason}`)),
    });
    gateways.push(west);
    await eventually(() => west.catalog.data.services.get('default/payments')?.conflicts.length === 1, 'conflict visible');
    await eventually(() => verdicts.includes('payments:false:port "http" is http 9999/http here but http 8080/http in us-east, which exported the service first'), 'us-west told of its conflict');
    expect(west.catalog.data.services.get('default/payments')?.exporters.map((e) => e.cluster)).toEqual(['us-east']);
    const status = await control.admin.call.status({});
    expect(status.services[0]?.conflicts).toEqual([{ cluster: 'us-west', reason: 'port "http" is http 9999/http here but http 8080/http in us-east, which exported the service first' }]);
  });

  it('sends an export only to the clusters it names as consumers', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('ledger', { consumers: ['us-west'] })] });
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west');
    const eu = await joinSimulatedGateway(control.admin, dir, 'eu-west');
    gateways.push(east, west, eu);
    await eventually(() => west.catalog.data.services.has('default/ledger'), 'ledger at us-west');
    await eventually(() => eu.catalog.data.revision === control.controller.catalog.revision, 'eu-west up to date');
    expect(eu.catalog.data.services.has('default/ledger')).toBe(false);
    expect(east.catalog.data.services.has('default/ledger')).toBe(true);
  });

  it('keeps one stream per gateway instance: replicas of a cluster do not replace each other', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('payments')], instance: 'east-a' });
    const eastB = startGatewayReplica(east, 'east-b');
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west');
    gateways.push(east, eastB, west);
    await eventually(async () => (await control.admin.call.status({})).clusters.find((c) => c.info?.name === 'us-east')?.instances.filter((i) => i.connected).length === 2, 'two connected us-east instances');
    await eventually(() => eastB.catalog.data.services.has('default/payments') && west.catalog.data.services.has('default/payments'), 'payments at both east replicas and us-west');
    // Both streams stay: neither replica is told it was replaced, so both keep receiving updates.
    await control.admin.call.drainCluster({ cluster: 'us-west', reason: 'test' });
    await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'draining' && eastB.catalog.data.clusters.get('us-west')?.state === 'draining', 'drain seen by both replicas');
    expect(east.client.connected && eastB.client.connected).toBe(true);

    // One replica going away leaves the cluster connected; its instance is reported gone.
    eastB.stop();
    await eventually(async () => {
      const cluster = (await control.admin.call.status({})).clusters.find((c) => c.info?.name === 'us-east');
      return cluster?.connected === true && cluster.instances.find((i) => i.instance === 'east-b')?.connected === false && cluster.instances.find((i) => i.instance === 'east-a')?.connected === true;
    }, 'east-b disconnected, east-a still connected');
    const cluster = (await control.admin.call.status({})).clusters.find((c) => c.info?.name === 'us-east');
    expect(cluster?.instances.map((i) => i.instance)).toEqual(['east-a', 'east-b']);
    // The exports of the cluster survive the departure of one replica.
    expect(west.catalog.data.services.has('default/payments')).toBe(true);
  });

  it('drains, removes and audits clusters; a removed cluster disappears from every bundle set', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east');
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west');
    gateways.push(east, west);
    await control.admin.call.drainCluster({ cluster: 'us-west', reason: 'maintenance window' });
    await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'draining', 'us-west draining at us-east');
    expect(east.catalog.data.clusters.get('us-west')).toMatchObject({ stateChangedBy: 'operator', stateReason: 'maintenance window' });
    await control.admin.call.undrainCluster({ cluster: 'us-west', reason: '' });
    await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'active', 'us-west active again');
    await control.admin.call.removeCluster({ cluster: 'us-west', reason: 'decommissioned' });
    await eventually(() => !east.catalog.data.bundles.has('us-west.acme.internal') && !east.catalog.data.clusters.has('us-west'), 'us-west gone at us-east');
    const status = await control.admin.call.status({});
    expect(status.audit.map((a) => `${a.action} ${a.target}`).slice(0, 3)).toEqual(['remove us-west', 'undrain us-west', 'drain us-west']);
  });

  it('stores, lists and deletes policies, stamped with revisions, and pushes them', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east');
    gateways.push(east);
    const doc = { apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'payments', namespace: 'default' }, spec: { timeout: '2s' } };
    const put = await control.admin.call.putPolicies({ policies: [{ key: '', kind: '', namespace: '', name: '', json: JSON.stringify(doc), revision: 0 }], sources: ['payments.yaml'] });
    await eventually(() => east.catalog.data.policies.get('TrafficPolicy/default/payments')?.revision === put.revision, 'policy at us-east');
    expect((await control.admin.call.listPolicies({})).policies.map((p) => p.key)).toEqual(['TrafficPolicy/default/payments']);
    await control.admin.call.deletePolicy({ key: 'TrafficPolicy/default/payments' });
    await eventually(() => east.catalog.data.policies.size === 0, 'policy deleted at us-east');
    await expect(control.admin.call.putPolicies({ policies: [{ key: '', kind: '', namespace: '', name: '', json: '{"kind":"X"}', revision: 0 }], sources: ['bad.yaml'] })).rejects.toThrow(
      'INVALID_ARGUMENT: bad.yaml: apiVersion: required\nbad.yaml: metadata: required',
    );
  });
});

/** A memory store whose next lease renewal waits until the test lets it through. */
class HeldLeaseStore extends MemoryStore {
  private hold: { reached: () => void; released: Promise<void> } | undefined;

  holdNextRenewal(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.hold = { reached, released };
    return { reached: reachedPromise, release };
  }

  override async renewLease(cluster: string, holder: string, expiresAt: number): Promise<void> {
    const hold = this.hold;
    if (hold) {
      this.hold = undefined;
      hold.reached();
      await hold.released;
    }
    return super.renewLease(cluster, holder, expiresAt);
  }
}

describe('a Sync stream that ends while the controller is still handling its Hello', () => {
  it('leaves no session behind: the instance shows disconnected and the cluster turns unreachable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-controller-'));
    const store = new HeldLeaseStore();
    const control = await startTestController(store, dir, { leaseTtl: '1s' });
    const gateways: SimulatedGateway[] = [];
    try {
      const held = store.holdNextRenewal();
      const east = await joinSimulatedGateway(control.admin, dir, 'us-east');
      gateways.push(east);
      // Hello is parked on its lease renewal; the gateway goes away before it finishes.
      await held.reached;
      east.stop();
      await eventually(() => !east.client.connected, 'the gateway side closed its stream');
      // The cancellation has to reach the controller before Hello resumes.
      await new Promise((resolve) => setTimeout(resolve, 300));
      held.release();

      await eventually(async () => {
        const status = await control.admin.call.status({});
        const cluster = status.clusters.find((c) => c.info?.name === 'us-east');
        return cluster !== undefined && !cluster.connected && cluster.instances.every((i) => !i.connected);
      }, 'us-east shows no connected instance');
      await eventually(() => control.controller.catalog.clusters.get('us-east')?.state === 'unreachable', 'us-east unreachable once its lease ran out', 10_000);
    } finally {
      for (const g of gateways) g.stop();
      await control.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A memory store whose next export write fails with an error the controller does not expect. */
class FailingExportStore extends MemoryStore {
  failNext = false;

  override async writeExports(...args: Parameters<MemoryStore['writeExports']>): ReturnType<MemoryStore['writeExports']> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk on fire');
    }
    return super.writeExports(...args);
  }
}

describe('a Hello the controller cannot complete', () => {
  it('closes the stream so the gateway reconnects, and keeps no half-admitted session', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-controller-'));
    const store = new FailingExportStore();
    const control = await startTestController(store, dir);
    const gateways: SimulatedGateway[] = [];
    try {
      store.failNext = true;
      const lines: string[] = [];
      const log = createRootLogger({ level: 'warn', destination: { write: (line: string) => lines.push(line) } });
      const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('payments')], log });
      gateways.push(east);
      await eventually(() => east.catalog.data.services.has('default/payments'), 'payments exported after the gateway reconnected');
      expect(store.failNext).toBe(false);
      // The gateway is told why, rather than tripping over a session the controller half-built.
      expect(lines.some((line) => line.includes('the controller could not admit this gateway: disk on fire'))).toBe(true);
      expect(lines.some((line) => line.includes('the first message must be Hello'))).toBe(false);
      const status = await control.admin.call.status({});
      expect(status.clusters.find((c) => c.info?.name === 'us-east')?.instances.map((i) => i.connected)).toEqual([true]);
    } finally {
      for (const g of gateways) g.stop();
      await control.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
