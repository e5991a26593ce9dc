/**
 * Joining when the controller's admin port (which serves GET /ca.crt) is not reachable from the
 * joining cluster, as in deploy/ where it is cluster-internal: the operator hands the controller
 * CA to `fedgate join --controller-ca`, and it is still checked against the hash in the token.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../../src/core/logger.js';
import { joinFederation } from '../../src/gateway/control/join-client.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { startTestController, type TestController } from '../support/control-plane.js';

const log = createSilentLogger();

function clusterInfo(name: string) {
  return { name, region: 'r', zone: 'z', trustDomain: `${name}.acme.internal`, gatewayAddresses: ['127.0.0.1:1'], labels: {}, state: '', stateReason: '', stateChangedBy: '', stateChangedAtMs: 0, joinedAtMs: 0, blackholedServices: [] };
}

describe('join with a controller CA given by the operator', () => {
  let dir: string;
  let control: TestController;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-join-ca-'));
    control = await startTestController(new MemoryStore(), dir);
  });
  afterEach(async () => {
    await control.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses the given CA instead of fetching it, and refuses one that does not match the token', async () => {
    const bundle = PkiDirectory.init(join(dir, 'us-east'), { trustDomain: 'us-east.acme.internal' }).bundle();
    const impostor = PkiDirectory.init(join(dir, 'impostor'), { trustDomain: 'acme.internal' });
    const { token } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    await expect(joinFederation({ token, info: clusterInfo('us-east'), bundle, log, controllerCaPem: readFileSync(join(impostor.dir, 'ca.crt'), 'utf8') })).rejects.toThrow(
      'does not match the hash in the join token; refusing to trust it',
    );
    const membership = await joinFederation({ token, info: clusterInfo('us-east'), bundle, log, controllerCaPem: readFileSync(join(control.pkiDir, 'ca.crt'), 'utf8') });
    expect(membership.federation).toBe('acme');
  });
});
