import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { SpiffeId } from '../../model/spiffe-id.js';

export interface CallerMapping {
  /** An address or a CIDR block of local callers. */
  address: string;
  namespace: string;
  serviceAccount: string;
}

/**
 * The identities of local callers on the outbound listener, by source address
 * (spec.gateway.callers). A caller no mapping covers is the gateway itself. The inbound side of
 * another cluster authorizes on this identity, so the mapping is the cluster's statement of who its
 * clients are: it is configuration of the cluster, never taken from a request.
 */
export class CallerIdentities {
  private readonly entries: Array<{ list: BlockList; id: string }>;
  private readonly cache = new Map<string, string>();

  constructor(trustDomain: string, mappings: readonly CallerMapping[]) {
    this.entries = mappings.map((m) => {
      const list = new BlockList();
      const [base, bits] = m.address.split('/') as [string, string | undefined];
      const family = isIPv6(base) ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(base, family);
      else list.addSubnet(base, Number(bits), family);
      return { list, id: SpiffeId.workload(trustDomain, m.namespace, m.serviceAccount).toString() };
    });
  }

  /** The identity of a caller at `remoteAddress`, or `fallback` (the gateway's own). */
  of(remoteAddress: string | undefined, fallback: string): string {
    if (this.entries.length === 0 || remoteAddress === undefined) return fallback;
    const cached = this.cache.get(remoteAddress);
    if (cached !== undefined) return cached;
    const address = remoteAddress.startsWith('::ffff:') && isIPv4(remoteAddress.slice(7)) ? remoteAddress.slice(7) : remoteAddress;
    const family = isIPv6(address) ? 'ipv6' : 'ipv4';
    const found = this.entries.find((e) => e.list.check(address, family))?.id ?? fallback;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(remoteAddress, found);
    return found;
  }
}
