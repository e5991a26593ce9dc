/**
 * Decides whether Kubernetes NetworkPolicies (networking.k8s.io/v1) let one endpoint reach another,
 * so the manifests' policies are checked against the flows the architecture needs (and those it
 * must refuse) without a cluster. The semantics follow the API reference:
 *
 * - a pod is isolated for a direction when some policy selecting it lists that direction in
 *   `policyTypes` (default: Ingress, plus Egress when `egress` is given); an isolated pod allows
 *   exactly the union of the rules of the policies that select it;
 * - a flow needs the source's egress and the destination's ingress to allow it;
 * - a rule without `from`/`to` matches every peer, without `ports` every port; a peer with
 *   `podSelector` alone means pods of the policy's namespace, with `namespaceSelector` pods of the
 *   matching namespaces (narrowed by a `podSelector` in the same peer); `ipBlock` matches addresses
 *   outside the pod network; a named port resolves against the destination pod's container ports.
 *
 * `matchExpressions` are refused rather than half-understood.
 */
import { BlockList, isIPv4 } from 'node:net';

type Labels = Record<string, string>;

interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: unknown[];
}

interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface PolicyPort {
  port?: number | string;
  endPort?: number;
  protocol?: string;
}

interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: PolicyPort[];
}

export interface NetworkPolicyObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: { podSelector: LabelSelector; policyTypes?: string[]; ingress?: PolicyRule[]; egress?: PolicyRule[] };
}

export interface PodEndpoint {
  kind: 'pod';
  name: string;
  namespace: string;
  namespaceLabels: Labels;
  labels: Labels;
  ports: Array<{ name?: string; containerPort: number; protocol?: string }>;
}

export interface ExternalEndpoint {
  kind: 'external';
  name: string;
  ip: string;
}

export type Endpoint = PodEndpoint | ExternalEndpoint;

export type Protocol = 'TCP' | 'UDP';

export function selectorMatches(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  if (selector.matchExpressions && selector.matchExpressions.length > 0) throw new Error('matchExpressions are not supported by this check');
  return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
}

export function policyTypes(policy: NetworkPolicyObject): string[] {
  return policy.spec.policyTypes ?? ['Ingress', ...(policy.spec.egress ? ['Egress'] : [])];
}

export function selects(policy: NetworkPolicyObject, pod: PodEndpoint): boolean {
  return (policy.metadata.namespace ?? 'default') === pod.namespace && selectorMatches(policy.spec.podSelector, pod.labels);
}

function inBlock(ip: string, block: { cidr: string; except?: string[] }): boolean {
  const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
  const list = (cidr: string): BlockList => {
    const [network, prefix] = cidr.split('/') as [string, string];
    const blocks = new BlockList();
    blocks.addSubnet(network, Number(prefix), isIPv4(network) ? 'ipv4' : 'ipv6');
    return blocks;
  };
  if ((isIPv4(block.cidr.split('/')[0] as string) ? 'ipv4' : 'ipv6') !== type) return false;
  return list(block.cidr).check(ip, type) && !(block.except ?? []).some((cidr) => list(cidr).check(ip, type));
}

function peerMatches(peers: PolicyPeer[] | undefined, endpoint: Endpoint, policyNamespace: string): boolean {
  if (!peers || peers.length === 0) return true;
  return peers.some((peer) => {
    if (peer.ipBlock) return endpoint.kind === 'external' && inBlock(endpoint.ip, peer.ipBlock);
    if (endpoint.kind !== 'pod') return false;
    const namespaceOk = peer.namespaceSelector ? selectorMatches(peer.namespaceSelector, endpoint.namespaceLabels) : endpoint.namespace === policyNamespace;
    return namespaceOk && selectorMatches(peer.podSelector, endpoint.labels);
  });
}

function portMatches(ports: PolicyPort[] | undefined, destination: Endpoint, port: number, protocol: Protocol): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return p.endPort === undefined ? p.port === port : port >= p.port && port <= p.endPort;
    return destination.kind === 'pod' && destination.ports.some((cp) => cp.name === p.port && cp.containerPort === port && (cp.protocol ?? 'TCP') === protocol);
  });
}

function allowedBy(policies: NetworkPolicyObject[], subject: PodEndpoint, direction: 'Ingress' | 'Egress', peer: Endpoint, destination: Endpoint, port: number, protocol: Protocol): boolean {
  const applicable = policies.filter((p) => p.kind === 'NetworkPolicy' && selects(p, subject) && policyTypes(p).includes(direction));
  if (applicable.length === 0) return true;
  return applicable.some((policy) =>
    ((direction === 'Ingress' ? policy.spec.ingress : policy.spec.egress) ?? []).some(
      (rule) => peerMatches(direction === 'Ingress' ? rule.from : rule.to, peer, policy.metadata.namespace ?? 'default') && portMatches(rule.ports, destination, port, protocol),
    ),
  );
}

/** Whether `source` may open a connection to `destination` on `port`. */
export function flowAllowed(policies: NetworkPolicyObject[], source: Endpoint, destination: Endpoint, port: number, protocol: Protocol = 'TCP'): boolean {
  const egress = source.kind === 'pod' ? allowedBy(policies, source, 'Egress', destination, destination, port, protocol) : true;
  const ingress = destination.kind === 'pod' ? allowedBy(policies, destination, 'Ingress', source, destination, port, protocol) : true;
  return egress && ingress;
}
