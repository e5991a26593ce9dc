import type { Logger } from '../../core/logger.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { CALLER_HEADER } from '../request/headers.js';
import { failure } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { IdentifiedStream, InboundPeer, InboundStream } from './inbound-stream.js';

const MAX_CALLERS_PER_PEER = 1024;

/** The identity a peer may assert for its caller, normalized; undefined when it is outside the peer's trust domain. */
function acceptedCaller(peer: InboundPeer, asserted: string): string | undefined {
  let accepted = peer.callers.get(asserted);
  if (accepted === undefined) {
    const id = SpiffeId.tryParse(asserted);
    accepted = id && id.memberOf(peer.id.trustDomain) ? id.toString() : null;
    if (peer.callers.size >= MAX_CALLERS_PER_PEER) peer.callers.clear();
    peer.callers.set(asserted, accepted);
  }
  return accepted ?? undefined;
}

/**
 * The caller of a request from a peer gateway: the identity the peer asserted in the caller
 * header, which must belong to the peer's own trust domain (a gateway of trust domain A may only
 * speak for identities of A), or the peer gateway itself when it asserted none.
 */
export function identityStage(log: Logger): (next: Handler<IdentifiedStream>) => Handler<InboundStream> {
  return (next) => (ctx) => {
    const { peer } = ctx;
    const asserted = ctx.headers[CALLER_HEADER];
    if (typeof asserted !== 'string' || asserted === '') return next({ ...ctx, caller: peer.spiffeId });
    const caller = acceptedCaller(peer, asserted);
    if (caller === undefined) {
      log.warn({ cluster: peer.cluster, asserted }, 'peer asserted an identity outside its trust domain');
      return Promise.resolve(failure('identity-rejected', `the gateway of ${peer.cluster} may only assert identities of ${peer.id.trustDomain}`));
    }
    return next({ ...ctx, caller });
  };
}
