/**
 * Static stability: the data plane never waits on the control plane. With the controller gone, a
 * running gateway keeps routing, and a gateway restarted meanwhile starts from its persisted
 * catalog and serves at once.
 */
import { jest } from '@jest/globals';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { runLoad } from '../../src/drill/load-generator.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { httpGet } from '../support/processes.js';

jest.setTimeout(90_000);

it('keeps serving without the controller, across a gateway restart', async () => {
  const [port] = (await freePorts(1)) as [number];
  const backend = await startHttpBackend('us-east', '127.0.0.1', port);
  const federation = await LocalFederation.create(
    [
      { name: 'us-east', region: 'us-east-1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }] }] },
      { name: 'eu-west', region: 'eu-west-1', zone: 'a' },
    ],
    { controller: {} },
  );
  try {
    await federation.startAll();
    await eventually(async () => (await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080')).status === 200, 'payments reachable');
    const before = JSON.parse((await httpGet(`${federation.adminUrl('eu-west')}/config`)).body) as { catalog: { revision: number; epoch: string } };

    await federation.controller?.process?.kill('SIGKILL');
    const withoutController = await runLoad({ kind: 'http', address: federation.outbound('eu-west'), authority: 'payments.default.svc.clusterset.local:8080' }, { rps: 100, durationMs: 1000 });
    expect(withoutController.filter((s) => !s.ok)).toEqual([]);

    await federation.cluster('eu-west').process?.stop();
    await federation.start('eu-west');
    const after = JSON.parse((await httpGet(`${federation.adminUrl('eu-west')}/config`)).body) as { catalog: { revision: number; epoch: string }; controllerConnected: boolean };
    expect(after.controllerConnected).toBe(false);
    expect(after.catalog).toMatchObject({ revision: before.catalog.revision, epoch: before.catalog.epoch });
    const restarted = await runLoad({ kind: 'http', address: federation.outbound('eu-west'), authority: 'payments.default.svc.clusterset.local:8080' }, { rps: 100, durationMs: 1000 });
    expect(restarted.filter((s) => !s.ok)).toEqual([]);
    expect(restarted.every((s) => s.servedBy === 'us-east')).toBe(true);
    expect(federation.cluster('eu-west').process?.logs).toContain('starting from the persisted catalog');
  } finally {
    await federation.stop();
    await backend.close();
  }
});

it('serves the first request to a peer gateway that came up after connects to it had failed', async () => {
  const [port] = (await freePorts(1)) as [number];
  const backend = await startHttpBackend('us-east', '127.0.0.1', port);
  // Health checks far apart: only requests drive the peer pool, as between two checks.
  const federation = await LocalFederation.create(
    [
      { name: 'us-east', region: 'us-east-1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }] }] },
      { name: 'eu-west', region: 'eu-west-1', zone: 'a' },
    ],
    { defaults: 'healthCheck:\n  interval: 60s' },
  );
  try {
    await federation.start('eu-west');
    // us-east is not running: connects fail and the pool starts failing fast for a growing while.
    for (let i = 0; i < 8; i++) {
      const refused = await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080');
      expect([refused.status, refused.headers['x-fedgate-reason']]).toEqual([503, 'connect-failed']);
    }
    // Keep calling while us-east starts: the pool's fail-fast window is fresh when it comes up.
    let up = false;
    const starting = federation.start('us-east').then(() => (up = true));
    while (!up) {
      const during = await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080');
      expect([200, 503]).toContain(during.status);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await starting;
    // The first attempt may still fail fast; its retry to the same cluster dials for real.
    const first = await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080');
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ servedBy: 'us-east' });
  } finally {
    await federation.stop();
    await backend.close();
  }
});
