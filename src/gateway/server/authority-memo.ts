import { parseClustersetAuthority } from '../../model/catalog.js';

export interface ParsedAuthority {
  namespace: string;
  name: string;
  port: number | undefined;
  /** `namespace/name` */
  key: string;
  /** `namespace/name:port`, the routing table's entry key. */
  routeKey: string;
}

const MAX_ENTRIES = 4096;

/**
 * Parses `:authority` / Host values once per distinct value: a gateway sees the same few service
 * names on every request, and the parse (three regular expressions, a split) showed in the
 * profile. Invalid values are remembered too; the memo is bounded so a client sending random hosts
 * only costs a periodic reset.
 */
export class AuthorityMemo {
  private readonly parsed = new Map<string, ParsedAuthority | null>();

  parse(authority: string): ParsedAuthority | undefined {
    let entry = this.parsed.get(authority);
    if (entry === undefined) {
      const address = parseClustersetAuthority(authority);
      entry = address ? { namespace: address.namespace, name: address.name, port: address.port, key: `${address.namespace}/${address.name}`, routeKey: `${address.namespace}/${address.name}:${address.port ?? ''}` } : null;
      if (this.parsed.size >= MAX_ENTRIES) this.parsed.clear();
      this.parsed.set(authority, entry);
    }
    return entry ?? undefined;
  }
}
