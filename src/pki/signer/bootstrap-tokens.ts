import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { ErrorCodes, TokenError } from '../../core/errors.js';

const PREFIX = 'fgs.';
const TOKEN = /^fgs\.[A-Za-z0-9_-]{43}$/;

export interface CreatedBootstrapToken {
  token: string;
  /** First hex digits of the token's hash: names it in logs without revealing it. */
  id: string;
  expiresAt: Date;
}

/**
 * One-time credentials for a signer on a plain host, where there is no Kubernetes ServiceAccount
 * to vouch for the gateway: `fedgate ca signer-token create` makes one, the gateway spends it on
 * its first certificate and renews with that certificate afterwards.
 *
 * Each token is a file named by its SHA-256 in a directory only the signer's user can read; the
 * token itself is stored nowhere. Spending it is unlink(2), which exactly one caller can win, so
 * the CLI (creating) and the signer (consuming) need no lock between them.
 */
export class BootstrapTokens {
  constructor(
    readonly dir: string,
    private readonly clock: Clock = systemClock,
  ) {}

  static isBootstrapToken(candidate: string): boolean {
    return TOKEN.test(candidate);
  }

  create(ttlMs: number): CreatedBootstrapToken {
    if (!(ttlMs > 0)) throw new TokenError(ErrorCodes.TOKEN_INVALID, `token lifetime must be positive, got ${ttlMs}ms`);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const token = `${PREFIX}${randomBytes(32).toString('base64url')}`;
    const hash = hashOf(token);
    const expiresAt = new Date(this.clock.now() + ttlMs);
    writeFileAtomicSync(join(this.dir, `${hash}.json`), `${JSON.stringify({ createdAt: new Date(this.clock.now()).toISOString(), expiresAt: expiresAt.toISOString() })}\n`, { mode: 0o600 });
    return { token, id: hash.slice(0, 12), expiresAt };
  }

  /** Spends a token; throws TokenError (invalid, expired) with a reason the caller may be told. */
  consume(token: string): { id: string } {
    if (!BootstrapTokens.isBootstrapToken(token)) throw new TokenError(ErrorCodes.TOKEN_INVALID, 'not a signer bootstrap token');
    const hash = hashOf(token);
    const file = join(this.dir, `${hash}.json`);
    let expiresAt: number;
    try {
      expiresAt = Date.parse((JSON.parse(readFileSync(file, 'utf8')) as { expiresAt?: string }).expiresAt ?? '');
    } catch {
      throw new TokenError(ErrorCodes.TOKEN_INVALID, 'bootstrap token unknown or already used; create a new one with "fedgate ca signer-token create"');
    }
    try {
      unlinkSync(file);
    } catch {
      throw new TokenError(ErrorCodes.TOKEN_USED, 'bootstrap token was just used by another request; tokens are single-use');
    }
    if (!(expiresAt > this.clock.now())) {
      throw new TokenError(ErrorCodes.TOKEN_EXPIRED, `bootstrap token expired at ${Number.isNaN(expiresAt) ? 'an unreadable time' : new Date(expiresAt).toISOString()}`);
    }
    return { id: hash.slice(0, 12) };
  }

  /** Removes expired tokens; returns how many. */
  prune(): number {
    if (!existsSync(this.dir)) return 0;
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
      const file = join(this.dir, name);
      try {
        const expiresAt = Date.parse((JSON.parse(readFileSync(file, 'utf8')) as { expiresAt?: string }).expiresAt ?? '');
        if (expiresAt > this.clock.now()) continue;
      } catch {
        // Unreadable: it can never be spent, so it goes too.
      }
      rmSync(file, { force: true });
      removed += 1;
    }
    return removed;
  }
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
