import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCodes, TokenError } from '../core/errors.js';

const PREFIX = 'fedgate';
const VERSION = 'v1';

/** What a join token tells the joining side before it trusts anything (like kubeadm's discovery hash). */
export interface JoinTokenClaims {
  cluster: string;
  /** Join endpoint of the controller (server TLS). */
  joinAddress: string;
  /** Admin HTTP endpoint serving the controller CA for the pinned fetch. */
  caAddress: string;
  /** SHA-256 (hex) of the controller CA certificate (DER); the joiner refuses any other CA. */
  caHash: string;
  expiresAt: number;
}

export interface ParsedJoinToken {
  claims: JoinTokenClaims;
  secret: string;
}

/**
 * `fedgate.v1.<claims, base64url JSON>.<secret, base64url 32 bytes>`. Only the SHA-256 of the
 * secret is stored; the claims are a convenience for the joiner and are not trusted by the
 * controller, which checks the stored record instead.
 */
export function createJoinToken(claims: JoinTokenClaims): { token: string; secretHash: string } {
  const secret = randomBytes(32).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ c: claims.cluster, j: claims.joinAddress, a: claims.caAddress, h: claims.caHash, x: claims.expiresAt })).toString('base64url');
  return { token: `${PREFIX}.${VERSION}.${payload}.${secret}`, secretHash: hashSecret(secret) };
}

export function parseJoinToken(token: string): ParsedJoinToken {
  const parts = token.trim().split('.');
  if (parts.length !== 4 || parts[0] !== PREFIX || parts[1] !== VERSION) {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, 'not a fedgate join token (expected fedgate.v1.<claims>.<secret>, from "fedgate token create")');
  }
  let raw: { c?: unknown; j?: unknown; a?: unknown; h?: unknown; x?: unknown };
  try {
    raw = JSON.parse(Buffer.from(parts[2] as string, 'base64url').toString('utf8')) as typeof raw;
  } catch {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, 'join token claims are not readable');
  }
  if (typeof raw.c !== 'string' || typeof raw.j !== 'string' || typeof raw.a !== 'string' || typeof raw.h !== 'string' || typeof raw.x !== 'number' || !/^[0-9a-f]{64}$/.test(raw.h)) {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, 'join token claims are incomplete');
  }
  const secret = parts[3] as string;
  if (Buffer.from(secret, 'base64url').length !== 32) throw new TokenError(ErrorCodes.TOKEN_INVALID, 'join token secret has the wrong length');
  return { claims: { cluster: raw.c, joinAddress: raw.j, caAddress: raw.a, caHash: raw.h, expiresAt: raw.x }, secret };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** SHA-256 of a certificate's DER, compared in constant time. */
export function certificateHash(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}
