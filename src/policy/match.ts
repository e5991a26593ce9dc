/**
 * Request and identity matching shared by routes, faults and authorization. Runs per request, so
 * everything that can be prepared (regular expressions, split patterns) is prepared when a policy
 * set is compiled, not here.
 */
import type { RequestMatchDoc } from './kinds.js';
import type { HeaderMatch, RequestMatch } from './service-policy.js';

/** What a request offers to matching. Header names are lower case (as Node delivers them). */
export interface RequestFacts {
  method: string;
  /** The request target; its query string is ignored by every path match. */
  path: string;
  headers: Readonly<Record<string, string | string[] | number | undefined>>;
}

export function compileRequestMatch(doc: RequestMatchDoc): RequestMatch {
  const headers: HeaderMatch[] = Object.entries(doc.headers ?? {}).map(([name, m]) => ({
    name,
    ...(m.exact !== undefined ? { exact: m.exact } : {}),
    ...(m.prefix !== undefined ? { prefix: m.prefix } : {}),
    ...(m.regex !== undefined ? { regex: anchored(m.regex) } : {}),
    ...(m.present !== undefined ? { present: m.present } : {}),
  }));
  return {
    headers,
    ...(doc.path?.exact !== undefined ? { pathExact: doc.path.exact } : {}),
    ...(doc.path?.prefix !== undefined ? { pathPrefix: doc.path.prefix } : {}),
    ...(doc.path?.regex !== undefined ? { pathRegex: anchored(doc.path.regex) } : {}),
    ...(doc.methods ? { methods: doc.methods } : {}),
  };
}

/** Istio and Envoy match regular expressions against the whole value (RE2 full match). */
function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

export function pathOnly(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

function headerValue(headers: RequestFacts['headers'], name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : String(value);
}

function headerMatches(m: HeaderMatch, headers: RequestFacts['headers']): boolean {
  const value = headerValue(headers, m.name);
  if (m.present !== undefined) return (value !== undefined) === m.present;
  if (value === undefined) return false;
  if (m.exact !== undefined) return value === m.exact;
  if (m.prefix !== undefined) return value.startsWith(m.prefix);
  if (m.regex !== undefined) return m.regex.test(value);
  return true;
}

export function requestMatches(m: RequestMatch, facts: RequestFacts): boolean {
  if (m.methods && !m.methods.includes(facts.method)) return false;
  if (m.pathExact !== undefined || m.pathPrefix !== undefined || m.pathRegex !== undefined) {
    const path = pathOnly(facts.path);
    if (m.pathExact !== undefined && path !== m.pathExact) return false;
    if (m.pathPrefix !== undefined && !path.startsWith(m.pathPrefix)) return false;
    if (m.pathRegex !== undefined && !m.pathRegex.test(path)) return false;
  }
  for (const header of m.headers) if (!headerMatches(header, facts.headers)) return false;
  return true;
}

/** Any of the matches (OR); no matches at all matches every request. */
export function anyRequestMatches(matches: readonly RequestMatch[], facts: RequestFacts): boolean {
  if (matches.length === 0) return true;
  for (const m of matches) if (requestMatches(m, facts)) return true;
  return false;
}

/**
 * A principal pattern against a SPIFFE ID: "*", an exact ID, "spiffe://td/ns/shop/*" (the ID is
 * under that path, at a segment boundary: ".../ns/shopping" is not under ".../ns/shop"),
 * "*\/sa/web" (the ID's path ends with those whole segments), or "spiffe://*\/ns/shop/sa/web"
 * (that exact path, or path prefix with "/*", in any trust domain).
 */
export function principalMatches(pattern: string, id: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('spiffe://*/')) {
    if (!id.startsWith('spiffe://')) return false;
    const slash = id.indexOf('/', 'spiffe://'.length);
    if (slash === -1) return false;
    const path = id.slice(slash);
    const wanted = pattern.slice('spiffe://*'.length);
    return wanted.endsWith('/*') ? path.length > wanted.length - 1 && path.startsWith(wanted.slice(0, -1)) : path === wanted;
  }
  if (pattern.endsWith('/*')) {
    const base = pattern.slice(0, -1);
    return id.length > base.length && id.startsWith(base);
  }
  if (pattern.startsWith('*/')) {
    const tail = pattern.slice(1);
    const schemeEnd = id.indexOf('/', 'spiffe://'.length);
    return schemeEnd !== -1 && id.length > tail.length && id.endsWith(tail) && id.length - tail.length >= schemeEnd;
  }
  return pattern === id;
}

/** Authorization path patterns: "*", exact, "/api/*" (prefix) or "*.json" (suffix); the query is ignored. */
export function pathPatternMatches(pattern: string, path: string): boolean {
  if (pattern === '*') return true;
  const p = pathOnly(path);
  if (pattern.endsWith('*')) return p.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return p.endsWith(pattern.slice(1));
  return p === pattern;
}

/** Trust domain and (for workload IDs, `/ns/<ns>/…`) namespace of a SPIFFE ID, without a full parse. */
export function identityParts(id: string): { trustDomain: string; namespace: string | undefined } {
  const rest = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const ns = /^\/ns\/([^/]+)(?:\/|$)/.exec(path);
  return { trustDomain, namespace: ns?.[1] };
}
