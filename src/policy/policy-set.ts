import type { InputIssue } from '../core/errors.js';
import type { PolicyRecord } from '../model/catalog.js';
import { compilePolicySet, type CompiledPolicySet, type PolicyInput } from './compile.js';
import { readEnvelope } from './envelope.js';
import { PolicyIndex } from './resolve.js';
import type { PolicyContext } from './trust-domains.js';

export interface PolicySetResult {
  /** The documents as they are stored (Istio ones unconverted: every gateway converts them itself). */
  policies: Array<Omit<PolicyRecord, 'revision'>>;
  set: CompiledPolicySet;
  issues: InputIssue[];
  warnings: InputIssue[];
}

/**
 * Validates a set of policy documents as one unit: all of them, every problem reported with its
 * file, line and field path; two documents with the same identity in one set are an error.
 */
export function validatePolicySet(documents: readonly PolicyInput[], context: PolicyContext = {}): PolicySetResult {
  const result = compilePolicySet(documents, context);
  const policies: Array<Omit<PolicyRecord, 'revision'>> = [];
  documents.forEach((input, index) => {
    if (result.keys[index] === undefined) return;
    const envelope = readEnvelope(input.document, []);
    if (!envelope) return;
    policies.push({ key: envelope.key, kind: envelope.kind, namespace: envelope.namespace, name: envelope.name, document: input.document as Record<string, unknown> });
  });
  return { policies, set: result.set, issues: result.issues, warnings: result.warnings };
}

/** The stored records of a set as compiler inputs, each named by its key and revision in messages. */
export function recordInputs(records: Iterable<PolicyRecord>): PolicyInput[] {
  return [...records].sort((a, b) => a.key.localeCompare(b.key)).map((r) => ({ document: r.document, source: `${r.key}@${r.revision}` }));
}

/** What a gateway knows of itself that can make it refuse a set the controller accepted. */
export interface GatewayPolicyLimits {
  cluster: string;
  /** spec.gateway.policies.allowFaultInjection of the cluster. */
  allowFaultInjection: boolean;
}

/** Why this gateway cannot apply a (valid) set; empty when it can. */
export function gatewayPolicyProblems(index: PolicyIndex, limits: GatewayPolicyLimits): string[] {
  const problems: string[] = [];
  if (!limits.allowFaultInjection) {
    for (const p of index.onCluster(limits.cluster)) {
      if (p.kind === 'FaultPolicy') problems.push(`${p.origin} injects faults on ${limits.cluster}, whose gateway refuses fault injection (spec.gateway.policies.allowFaultInjection: false)`);
    }
  }
  return problems;
}

/** Outcome of applying a stored set on a gateway: the index to use, or every reason it cannot be used. */
export type GatewayPolicyResult = { ok: true; index: PolicyIndex; warnings: InputIssue[] } | { ok: false; problems: string[] };

/**
 * `context` carries the federation's trust-domain aliases (spec.trustDomainAliases); without it the
 * default applies (cluster.local stands for every member).
 */
export function compileForGateway(records: Iterable<PolicyRecord>, limits: GatewayPolicyLimits, context: PolicyContext = {}): GatewayPolicyResult {
  const result = compilePolicySet(recordInputs(records), context);
  if (result.issues.length > 0) {
    return { ok: false, problems: result.issues.map((i) => `${i.source ? `${i.source}: ` : ''}${i.path ? `${i.path}: ` : ''}${i.message}`) };
  }
  const index = new PolicyIndex(result.set);
  const problems = gatewayPolicyProblems(index, limits);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, index, warnings: result.warnings };
}
