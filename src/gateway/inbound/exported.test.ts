import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import type { LocalExport } from '../../discovery/provider.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { H2ServerStream } from '../../http2/index.js';
import { failure, type Outcome } from '../request/outcome.js';
import { ControlViewPublisher } from '../view/control-view.js';
import { exportedStage } from './exported.js';
import type { ExportedStream, IdentifiedStream } from './inbound-stream.js';

const payments: LocalExport = { namespace: 'default', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 80, protocol: 'http' }], endpoints: [], consumers: [], createdAt: 0 };
const ledger: LocalExport = { ...payments, name: 'ledger', consumers: ['eu-west'] };

const view = new ControlViewPublisher(
  { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
  {
    federation: 'acme',
    defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults,
    localExports: { exports: new Map([['default/payments', payments], ['default/ledger', ledger]]), source: 'test' },
    catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() },
  },
).current;

function stream(name: string, port: number): IdentifiedStream {
  const id = SpiffeId.gateway('us-west.acme.internal', 'us-west');
  return { view, peer: { id, spiffeId: id.toString(), cluster: 'us-west', callers: new Map() }, caller: id.toString(), stream: {} as H2ServerStream, headers: {}, endStream: true, method: 'GET', path: '/', grpc: false, service: { namespace: 'default', name, port, key: `default/${name}` } };
}

describe('exportedStage', () => {
  const passed: ExportedStream[] = [];
  const ok = failure('client-closed', 'stand-in answer of the next stage');
  const handler = exportedStage('us-east')(async (ctx): Promise<Outcome> => {
    passed.push(ctx);
    return ok;
  });
  beforeEach(() => (passed.length = 0));

  it('passes on an exported service and port with the export that serves it', async () => {
    expect(await handler(stream('payments', 8080))).toBe(ok);
    expect(passed[0]?.exported).toBe(payments);
    expect(passed[0]?.port).toEqual(payments.ports[0]);
  });

  it('refuses a service that is not exported, a port it does not export, and a cluster it is not exported to', async () => {
    expect(await handler(stream('secrets', 8080))).toEqual(failure('service-not-exported', 'secrets.default is not exported by us-east'));
    expect(await handler(stream('payments', 22))).toEqual(failure('port-not-exported', 'payments.default exports no port 22'));
    expect(await handler(stream('ledger', 8080))).toEqual(failure('consumer-not-allowed', 'ledger.default is exported to eu-west only, not to us-west'));
    expect(passed).toEqual([]);
  });
});
