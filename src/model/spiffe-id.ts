import { SpiffeIdError } from '../core/errors.js';

const MAX_TRUST_DOMAIN_BYTES = 255;
const MAX_ID_BYTES = 2048;
const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_SEGMENT_CHAR = /^[a-zA-Z0-9._-]$/;
const PREFIX = 'spiffe://';

/** Checks a trust domain name against the SPIFFE-ID spec; returns the reason it is invalid, or undefined. */
export function trustDomainProblem(name: string): string | undefined {
  if (name.length === 0) return 'trust domain is empty';
  if (Buffer.byteLength(name) > MAX_TRUST_DOMAIN_BYTES) return `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  for (const char of name) {
    if (!TRUST_DOMAIN_CHAR.test(char)) {
      if (char >= 'A' && char <= 'Z') return 'trust domain must be lower case';
      if (char === ':') return 'trust domain must not contain a port';
      if (char === '@') return 'trust domain must not contain user info';
      if (char === '%') return 'trust domain must not be percent-encoded';
      return `trust domain contains "${char}"; allowed are a-z, 0-9, ".", "-" and "_"`;
    }
  }
  return undefined;
}

function pathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (!path.startsWith('/')) return 'path must start with "/"';
  if (path.endsWith('/')) return 'path must not end with "/"';
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') return 'path must not contain empty segments ("//")';
    if (segment === '.' || segment === '..') return 'path must not contain "." or ".." segments';
    for (const char of segment) {
      if (!PATH_SEGMENT_CHAR.test(char)) {
        if (char === '%') return 'path must not be percent-encoded';
        if (char === '?') return 'SPIFFE ID must not have a query';
        if (char === '#') return 'SPIFFE ID must not have a fragment';
        return `path contains "${char}"; allowed are a-z, A-Z, 0-9, ".", "-" and "_"`;
      }
    }
  }
  return undefined;
}

/**
 * A parsed SPIFFE ID. Compare IDs with `equals`, never as strings: two spellings must not be able to
 * name the same workload, and the parser is what guarantees there is only one.
 */
export class SpiffeId {
  private constructor(
    readonly trustDomain: string,
    readonly path: string,
  ) {}

  /** Parses `spiffe://<trust-domain>[/<path>]`, throwing SpiffeIdError with the precise reason. */
  static parse(text: string): SpiffeId {
    if (Buffer.byteLength(text) > MAX_ID_BYTES) throw new SpiffeIdError(`SPIFFE ID is longer than ${MAX_ID_BYTES} bytes`);
    if (!text.startsWith(PREFIX)) {
      throw new SpiffeIdError(`"${text}" is not a SPIFFE ID: it must start with "${PREFIX}"`);
    }
    const rest = text.slice(PREFIX.length);
    const slash = rest.indexOf('/');
    const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? '' : rest.slice(slash);
    const tdProblem = trustDomainProblem(trustDomain);
    if (tdProblem) throw new SpiffeIdError(`"${text}": ${tdProblem}`);
    const problem = pathProblem(path);
    if (problem) throw new SpiffeIdError(`"${text}": ${problem}`);
    return new SpiffeId(trustDomain, path);
  }

  static tryParse(text: string): SpiffeId | undefined {
    try {
      return SpiffeId.parse(text);
    } catch {
      return undefined;
    }
  }

  /** Builds an ID from a trust domain and path segments, validating both. */
  static of(trustDomain: string, ...segments: string[]): SpiffeId {
    const joined = segments.find((segment) => segment.includes('/'));
    if (joined !== undefined) throw new SpiffeIdError(`path segment "${joined}" must not contain "/"`);
    return SpiffeId.parse(segments.length === 0 ? `${PREFIX}${trustDomain}` : `${PREFIX}${trustDomain}/${segments.join('/')}`);
  }

  static gateway(trustDomain: string, cluster: string): SpiffeId {
    return SpiffeId.of(trustDomain, 'fedgate', 'gateway', cluster);
  }

  static controller(federationTrustDomain: string): SpiffeId {
    return SpiffeId.of(federationTrustDomain, 'fedgate', 'controller');
  }

  static admin(federationTrustDomain: string, name: string): SpiffeId {
    return SpiffeId.of(federationTrustDomain, 'fedgate', 'admin', name);
  }

  static workload(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
    return SpiffeId.of(trustDomain, 'ns', namespace, 'sa', serviceAccount);
  }

  get segments(): string[] {
    return this.path === '' ? [] : this.path.slice(1).split('/');
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain === other.trustDomain && this.path === other.path;
  }

  memberOf(trustDomain: string): boolean {
    return this.trustDomain === trustDomain;
  }

  /** The cluster name when this is a fedgate gateway ID, else undefined. */
  get gatewayCluster(): string | undefined {
    const s = this.segments;
    return s.length === 3 && s[0] === 'fedgate' && s[1] === 'gateway' ? s[2] : undefined;
  }

  /** Namespace of a Kubernetes-style workload ID (`/ns/<ns>/sa/<sa>`). */
  get namespace(): string | undefined {
    const s = this.segments;
    return s.length >= 2 && s[0] === 'ns' ? s[1] : undefined;
  }

  toString(): string {
    return `${PREFIX}${this.trustDomain}${this.path}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
