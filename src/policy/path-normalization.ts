/**
 * Request paths as routing and authorization see them, and as the upstream receives them. A rule
 * written for `/admin/*` must hold for `/./admin/x`, `//admin/x`, `/x/../admin/x` and
 * `/%61dmin/x` too: the gateway normalizes first, then matches and forwards the normalized path,
 * so the upstream never sees a spelling the rules did not (Istio's `pathNormalization`).
 *
 * Modes, each including the ones before it:
 * - `none`: the path as the client sent it (only an absolute-form target is reduced to its path);
 * - `base`: RFC 3986 §6.2.2 — percent-encodings of unreserved characters decoded, hex digits of
 *   the others upper-cased, and dot-segments removed (§5.2.4); a backslash is refused;
 * - `merge-slashes`: runs of `/` become one;
 * - `decode-and-merge-slashes` (the default): also refuses `%2F` and `%5C` (an encoded slash or
 *   backslash would be one segment here and two at an upstream that decodes it).
 * The query string is kept as it was.
 */
import type { PathNormalization } from '../config/federation-config.js';

export type { PathNormalization };

export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Reduces an absolute-form request target (`http://host/path?q`) to its origin form (`/path?q`). */
function originForm(target: string): string {
  if (target.startsWith('/')) return target;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (!scheme) return target;
  const rest = target.slice(scheme[0].length);
  return rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
}

/** Decodes %XX of unreserved characters and upper-cases the hex of the rest (RFC 3986 §6.2.2.1–2). */
function normalizePercent(path: string, refuseEncodedSlash: boolean): string | { reason: string } {
  if (!path.includes('%')) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as string;
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { reason: `"${path.slice(i, i + 3)}" is not a percent-encoding` };
    const decoded = String.fromCharCode(parseInt(hex, 16));
    if (refuseEncodedSlash && (decoded === '/' || decoded === '\\')) return { reason: `an encoded ${decoded === '/' ? 'slash (%2F)' : 'backslash (%5C)'} is refused: upstreams disagree on whether it separates segments` };
    out += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** RFC 3986 §5.2.4: removes `.` and `..` segments; `..` never climbs above the root. */
export function removeDotSegments(path: string): string {
  const input = path.split('/');
  const output: string[] = [];
  for (let i = 0; i < input.length; i++) {
    const segment = input[i] as string;
    const last = i === input.length - 1;
    if (segment === '.') {
      if (last) output.push('');
      continue;
    }
    if (segment === '..') {
      if (output.length > 1) output.pop();
      if (last) output.push('');
      continue;
    }
    output.push(segment);
  }
  const joined = output.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

export function normalizePath(target: string, mode: PathNormalization): NormalizedPath {
  const origin = originForm(target);
  if (mode === 'none') return { ok: true, path: origin };
  const queryAt = origin.search(/[?#]/);
  let path = queryAt === -1 ? origin : origin.slice(0, queryAt);
  const query = queryAt === -1 ? '' : origin.slice(queryAt);
  if (!path.startsWith('/')) return { ok: false, reason: `"${target.slice(0, 64)}" is not an origin-form or absolute-form request target` };
  if (path.includes('\\')) return { ok: false, reason: 'a backslash in the path is refused: upstreams disagree on whether it separates segments' };
  const decoded = normalizePercent(path, mode === 'decode-and-merge-slashes');
  if (typeof decoded !== 'string') return { ok: false, reason: decoded.reason };
  path = decoded;
  if (mode === 'merge-slashes' || mode === 'decode-and-merge-slashes') path = path.replace(/\/{2,}/g, '/');
  path = removeDotSegments(path);
  return { ok: true, path: path + query };
}
