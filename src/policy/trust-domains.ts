/**
 * Trust-domain aliases: how a principal written for one mesh (Istio's default trust domain
 * `cluster.local`) maps onto the callers of this federation, whose identities live in one trust
 * domain per member cluster.
 *
 * An alias stands either for **every member** (Istio's `trustDomainAliases` meaning: the names are
 * interchangeable) or for **the member trust domains it lists**. A principal whose trust domain is
 * an alias matches the same path in each trust domain the alias stands for:
 *
 * - every member: `spiffe://cluster.local/ns/shop/sa/web` → `spiffe://*\/ns/shop/sa/web` (that
 *   workload identity in whichever member trust domain its gateway vouches for; a gateway may only
 *   assert identities of its own trust domain, so "any trust domain" is "any member");
 * - listed members: one pattern per listed trust domain.
 *
 * A member's own trust domain always means that member, even if it is also listed as an alias.
 * The expansion happens when a set is compiled, so the stored documents stay as they were written.
 */
import { DEFAULT_TRUST_DOMAIN_ALIASES } from '../config/federation-config.js';
import type { AuthorizationSpec } from './kinds.js';

/** One entry of `spec.trustDomainAliases`: `trustDomains` absent means every member. */
export interface TrustDomainAlias {
  alias: string;
  trustDomains?: readonly string[];
}

/**
 * With no `spec.trustDomainAliases` in federation.yaml, Istio's default trust domain stands for
 * every member: that is how documents written for a multi-cluster Istio mesh (one shared
 * `cluster.local`) behaved where they came from.
 */
export { DEFAULT_TRUST_DOMAIN_ALIASES };

/** What a policy set is compiled against, beyond its own documents. */
export interface PolicyContext {
  /** Default: DEFAULT_TRUST_DOMAIN_ALIASES. */
  trustDomainAliases?: readonly TrustDomainAlias[];
  /**
   * The trust domains of the federation's clusters, when known (federation-config's cluster files,
   * or the clusters that joined the controller). Without them, principals are not checked against
   * the membership.
   */
  memberTrustDomains?: Iterable<string>;
  /**
   * A VirtualService subset that no DestinationRule of the set defines: an error where the set is
   * complete (controller, gateway, static federation), a warning where it may be completed by
   * documents stored at the controller (`policy validate`, the first check of `policy apply`).
   */
  unresolvedSubsets?: 'error' | 'warning';
}

/** The context, read once per compilation. */
export class TrustDomainResolver {
  private readonly aliases: ReadonlyMap<string, readonly string[] | 'every-member'>;
  private readonly members: ReadonlySet<string> | undefined;

  constructor(context: PolicyContext = {}) {
    this.aliases = new Map((context.trustDomainAliases ?? DEFAULT_TRUST_DOMAIN_ALIASES).map((a) => [a.alias, a.trustDomains ? [...a.trustDomains] : 'every-member']));
    this.members = context.memberTrustDomains ? new Set(context.memberTrustDomains) : undefined;
  }

  private isMember(trustDomain: string): boolean {
    return this.members?.has(trustDomain) ?? false;
  }

  /** What a trust domain named in a policy stands for: itself, a list of members, or every member. */
  resolve(trustDomain: string): readonly string[] | 'every-member' {
    if (this.isMember(trustDomain)) return [trustDomain];
    return this.aliases.get(trustDomain) ?? [trustDomain];
  }

  /**
   * Why a trust domain named in a policy can match no caller; undefined when it can (or when the
   * members are not known here).
   */
  problem(trustDomain: string): string | undefined {
    if (!this.members || this.isMember(trustDomain) || this.aliases.has(trustDomain)) return undefined;
    const known = [...this.members].sort();
    return `trust domain "${trustDomain}" is no cluster's and no alias (spec.trustDomainAliases of federation.yaml): matches no caller in this federation${known.length > 0 ? ` (members: ${known.join(', ')})` : ''}`;
  }

  /** The warning for one principal pattern, or undefined. */
  principalProblem(pattern: string, written: string = pattern): string | undefined {
    const trustDomain = trustDomainOfPattern(pattern);
    if (trustDomain === undefined) return undefined;
    const problem = this.problem(trustDomain);
    return problem ? `"${written}": ${problem}` : undefined;
  }

  /** The patterns one principal pattern stands for. */
  expandPrincipal(pattern: string): string[] {
    const trustDomain = trustDomainOfPattern(pattern);
    if (trustDomain === undefined) return [pattern];
    const rest = pattern.slice(`spiffe://${trustDomain}`.length);
    const targets = this.resolve(trustDomain);
    if (targets === 'every-member') return rest === '' ? [pattern] : [`spiffe://*${rest}`];
    return targets.map((t) => `spiffe://${t}${rest}`);
  }

  /** The spec with every alias replaced by what it stands for (a new object; the input is not changed). */
  expandAuthorization(spec: AuthorizationSpec): AuthorizationSpec {
    const unique = (values: string[]): string[] => [...new Set(values)];
    return {
      ...spec,
      rules: spec.rules?.map((rule) => ({
        ...rule,
        from: rule.from?.map((source) => {
          const out = { ...source };
          if (source.principals) out.principals = unique(source.principals.flatMap((p) => this.expandPrincipal(p)));
          if (source.notPrincipals) out.notPrincipals = unique(source.notPrincipals.flatMap((p) => this.expandPrincipal(p)));
          if (source.trustDomains) {
            const resolved = source.trustDomains.map((td) => this.resolve(td));
            // An alias of every member in the list: the list no longer narrows anything.
            if (resolved.includes('every-member')) delete out.trustDomains;
            else out.trustDomains = unique(resolved.flatMap((r) => r as readonly string[]));
          }
          return out;
        }),
      })),
    };
  }
}

/**
 * The trust domain a principal pattern names: `spiffe://<td>/…` → td; `*`, `*\/…` and
 * `spiffe://*\/…` name none.
 */
export function trustDomainOfPattern(pattern: string): string | undefined {
  if (!pattern.startsWith('spiffe://') || pattern.startsWith('spiffe://*')) return undefined;
  const rest = pattern.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}
