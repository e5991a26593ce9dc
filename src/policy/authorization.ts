/**
 * Authorization of one request at the gateway that serves it, on the verified caller identity.
 *
 * DENY policies are evaluated first: a matching DENY rule refuses the request. Then, when at least
 * one ALLOW policy selects the service, the request must match one of their rules (default deny);
 * with no ALLOW policy, everything not denied is allowed. A rule matches when one of its `from`
 * entries and one of its `to` entries match (a missing list matches everything); inside an entry
 * every field given must match. An ALLOW policy without rules allows nothing.
 */
import type { AuthorizationSpec } from './kinds.js';
import { identityParts, pathPatternMatches, principalMatches } from './match.js';

export interface AuthorizationPolicyRef {
  /** `AuthorizationPolicy/<namespace>/<name>` (or the Istio document it came from). */
  origin: string;
  spec: AuthorizationSpec;
}

/** The authorization in force for one service on one gateway. */
export interface AuthorizationRules {
  deny: readonly AuthorizationPolicyRef[];
  allow: readonly AuthorizationPolicyRef[];
}

export const NO_AUTHORIZATION: AuthorizationRules = Object.freeze({ deny: [], allow: [] });

export interface CallFacts {
  /** Verified SPIFFE ID of the caller. */
  principal: string;
  /** Cluster the call comes from (the authenticated peer gateway's). */
  sourceCluster: string;
  method: string;
  path: string;
  /** Clusterset port the caller asked for. */
  port: number;
}

export interface AuthorizationDecision {
  allowed: boolean;
  /** The policy that decided, when one did. */
  policy: string | undefined;
  /** For the response and the debug log: why. */
  reason: string;
}

type Rule = NonNullable<AuthorizationSpec['rules']>[number];
type Source = NonNullable<Rule['from']>[number];
type Operation = NonNullable<Rule['to']>[number];

function sourceMatches(source: Source, facts: CallFacts, parts: ReturnType<typeof identityParts>): boolean {
  if (source.principals && !source.principals.some((p) => principalMatches(p, facts.principal))) return false;
  if (source.notPrincipals?.some((p) => principalMatches(p, facts.principal))) return false;
  if (source.trustDomains && !source.trustDomains.includes(parts.trustDomain)) return false;
  if (source.clusters && !source.clusters.includes(facts.sourceCluster)) return false;
  if (source.namespaces && (parts.namespace === undefined || !source.namespaces.includes(parts.namespace))) return false;
  return true;
}

function operationMatches(op: Operation, facts: CallFacts): boolean {
  if (op.methods && !op.methods.includes(facts.method)) return false;
  if (op.paths && !op.paths.some((p) => pathPatternMatches(p, facts.path))) return false;
  if (op.ports && !op.ports.includes(facts.port)) return false;
  return true;
}

function ruleMatches(rule: Rule, facts: CallFacts, parts: ReturnType<typeof identityParts>): boolean {
  if (rule.from && !rule.from.some((source) => sourceMatches(source, facts, parts))) return false;
  if (rule.to && !rule.to.some((op) => operationMatches(op, facts))) return false;
  return true;
}

function firstMatch(policies: readonly AuthorizationPolicyRef[], facts: CallFacts, parts: ReturnType<typeof identityParts>): { policy: AuthorizationPolicyRef; rule: number } | undefined {
  for (const policy of policies) {
    const rules = policy.spec.rules ?? [];
    for (let i = 0; i < rules.length; i++) if (ruleMatches(rules[i] as Rule, facts, parts)) return { policy, rule: i };
  }
  return undefined;
}

export function authorize(rules: AuthorizationRules, facts: CallFacts): AuthorizationDecision {
  if (rules.deny.length === 0 && rules.allow.length === 0) return { allowed: true, policy: undefined, reason: 'no authorization policy' };
  const parts = identityParts(facts.principal);
  const denied = firstMatch(rules.deny, facts, parts);
  if (denied) return { allowed: false, policy: denied.policy.origin, reason: `${facts.principal} is denied by ${denied.policy.origin} (rule ${denied.rule})` };
  if (rules.allow.length === 0) return { allowed: true, policy: undefined, reason: 'no DENY rule matches and no ALLOW policy selects the service' };
  const allowed = firstMatch(rules.allow, facts, parts);
  if (allowed) return { allowed: true, policy: allowed.policy.origin, reason: `allowed by ${allowed.policy.origin} (rule ${allowed.rule})` };
  return {
    allowed: false,
    policy: rules.allow.map((p) => p.origin).join(','),
    reason: `${facts.method} ${facts.path} from ${facts.principal} matches no rule of ${rules.allow.map((p) => p.origin).join(', ')} (ALLOW policies deny what they do not allow)`,
  };
}
