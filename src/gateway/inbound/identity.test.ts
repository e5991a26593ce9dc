import { jest } from '@jest/globals';
import { createSilentLogger } from '../../core/logger.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { H2ServerStream } from '../../http2/index.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { ControlView } from '../view/control-view.js';
import { identityStage } from './identity.js';
import type { IdentifiedStream, InboundPeer, InboundStream } from './inbound-stream.js';

const id = SpiffeId.gateway('us-west.acme.internal', 'us-west');

function peer(): InboundPeer {
  return { id, spiffeId: id.toString(), cluster: 'us-west', callers: new Map() };
}

function stream(p: InboundPeer, headers: Record<string, string> = {}): InboundStream {
  return { view: {} as ControlView, peer: p, stream: {} as H2ServerStream, headers, endStream: true, method: 'GET', path: '/', grpc: false, service: { namespace: 'default', name: 'payments', port: 8080, key: 'default/payments' } };
}

const ok: Outcome = failure('client-closed', 'stand-in answer of the next stage');

function recordingNext(): { next: (ctx: IdentifiedStream) => Promise<Outcome>; callers: string[] } {
  const callers: string[] = [];
  return {
    callers,
    next: async (ctx) => {
      callers.push(ctx.caller);
      return ok;
    },
  };
}

describe('identityStage', () => {
  it('takes the peer gateway itself as the caller when it asserted no identity', async () => {
    const r = recordingNext();
    const p = peer();
    expect(await identityStage(createSilentLogger())(r.next)(stream(p))).toBe(ok);
    await identityStage(createSilentLogger())(r.next)(stream(p, { 'x-fedgate-caller': '' }));
    expect(r.callers).toEqual([id.toString(), id.toString()]);
  });

  it('accepts an identity of the peer’s own trust domain, and remembers the verdict for the peer', async () => {
    const r = recordingNext();
    const p = peer();
    const caller = 'spiffe://us-west.acme.internal/ns/shop/sa/web';
    await identityStage(createSilentLogger())(r.next)(stream(p, { 'x-fedgate-caller': caller }));
    expect(r.callers).toEqual([caller]);
    expect(p.callers.get(caller)).toBe(caller);
  });

  it('refuses an identity of another trust domain, or one that is no SPIFFE ID, without calling the next stage', async () => {
    const log = createSilentLogger();
    const warn = jest.spyOn(log, 'warn');
    const r = recordingNext();
    const p = peer();
    for (const asserted of ['spiffe://us-east.acme.internal/ns/shop/sa/admin', 'not an id']) {
      expect(await identityStage(log)(r.next)(stream(p, { 'x-fedgate-caller': asserted }))).toEqual(
        failure('identity-rejected', 'the gateway of us-west may only assert identities of us-west.acme.internal'),
      );
      expect(p.callers.get(asserted)).toBeNull();
    }
    expect(r.callers).toEqual([]);
    expect(warn).toHaveBeenCalledWith({ peer: 'us-west', asserted: 'not an id' }, 'peer asserted an identity outside its trust domain');
  });

  it('bounds the verdicts it keeps per peer', async () => {
    const r = recordingNext();
    const p = peer();
    for (let i = 0; i <= 1024; i++) await identityStage(createSilentLogger())(r.next)(stream(p, { 'x-fedgate-caller': `spiffe://us-west.acme.internal/ns/shop/sa/w${i}` }));
    expect(r.callers).toHaveLength(1025);
    expect(p.callers.size).toBe(1);
  });
});
