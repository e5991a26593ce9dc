import { CallerIdentities } from './caller-identities.js';

const GATEWAY = 'spiffe://us-east.acme.internal/fedgate/gateway/us-east';

describe('CallerIdentities', () => {
  const callers = new CallerIdentities('us-east.acme.internal', [
    { address: '10.1.0.0/16', namespace: 'shop', serviceAccount: 'web' },
    { address: '192.168.5.7', namespace: 'ops', serviceAccount: 'batch' },
    { address: 'fd00::/64', namespace: 'shop', serviceAccount: 'api' },
  ]);

  it('maps a source address to the workload identity of the block that covers it', () => {
    expect(callers.of('10.1.2.3', GATEWAY)).toBe('spiffe://us-east.acme.internal/ns/shop/sa/web');
    expect(callers.of('192.168.5.7', GATEWAY)).toBe('spiffe://us-east.acme.internal/ns/ops/sa/batch');
    expect(callers.of('fd00::1', GATEWAY)).toBe('spiffe://us-east.acme.internal/ns/shop/sa/api');
  });

  it('reads IPv4 addresses mapped into IPv6, as dual-stack listeners report them', () => {
    expect(callers.of('::ffff:10.1.9.9', GATEWAY)).toBe('spiffe://us-east.acme.internal/ns/shop/sa/web');
  });

  it('takes the gateway’s own identity for a caller no mapping covers, or an unknown address', () => {
    expect(callers.of('10.2.0.1', GATEWAY)).toBe(GATEWAY);
    expect(callers.of('10.2.0.1', GATEWAY)).toBe(GATEWAY);
    expect(callers.of(undefined, GATEWAY)).toBe(GATEWAY);
    expect(new CallerIdentities('us-east.acme.internal', []).of('10.1.2.3', GATEWAY)).toBe(GATEWAY);
  });
});
