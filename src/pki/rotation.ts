import { randomBytes } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { systemClock, type Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Svid } from './svid.js';
import { serverSecureContext } from './tls-options.js';
import type { TrustStore } from './trust-store.js';

const MAX_TIMER_MS = 2_147_483_647;
const RETRY_MS = 10_000;

export interface RotatingSvidOptions {
  /** Re-issue when this fraction of the lifetime has passed; at most 0.5. */
  renewFraction?: number;
  clock?: Clock;
  log?: Logger;
}

/**
 * A leaf SVID that renews itself at half its lifetime (or earlier), so a renewal that fails has
 * the whole second half to be retried before anything expires.
 */
export class RotatingSvid {
  private svid: Svid;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(svid: Svid) => void>();
  private readonly renewFraction: number;
  private readonly clock: Clock;

  constructor(
    private readonly issue: () => Svid,
    private readonly options: RotatingSvidOptions = {},
  ) {
    this.renewFraction = Math.min(0.5, options.renewFraction ?? 0.5);
    this.clock = options.clock ?? systemClock;
    this.svid = issue();
  }

  get current(): Svid {
    return this.svid;
  }

  /** When the current SVID is due for renewal (ms since epoch). */
  get renewAt(): number {
    const start = this.svid.notBefore.getTime();
    return start + (this.svid.notAfter.getTime() - start) * this.renewFraction;
  }

  onRotate(listener: (svid: Svid) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.schedule(Math.max(0, this.renewAt - this.clock.now()));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Renews now (also used by CA rotation to move leaves onto the new CA). */
  rotate(): Svid {
    this.svid = this.issue();
    this.options.log?.info({ spiffeId: this.svid.spiffeId.toString(), notAfter: this.svid.notAfter.toISOString() }, 'certificate renewed');
    for (const listener of this.listeners) listener(this.svid);
    return this.svid;
  }

  private schedule(delay: number): void {
    this.stop();
    this.timer = setTimeout(() => {
      try {
        this.rotate();
        this.schedule(Math.max(0, this.renewAt - this.clock.now()));
      } catch (error) {
        const left = this.svid.notAfter.getTime() - this.clock.now();
        this.options.log?.error({ err: errorMessage(error), expiresInMs: left }, 'certificate renewal failed; retrying');
        this.schedule(Math.min(RETRY_MS, Math.max(1000, left / 10)));
      }
    }, Math.min(delay, MAX_TIMER_MS));
    this.timer.unref();
  }
}

/**
 * Keeps a TLS listener's secure context in step with its SVID and the trust bundles. Swapping the
 * context with `setSecureContext` affects only new handshakes; established connections carry on.
 * Ticket keys are replaced on every trust change so no session outlives the bundles it was made under.
 */
export function bindListener(server: TlsServer, svid: RotatingSvid, trust: TrustStore): () => void {
  const apply = (): void => server.setSecureContext(serverSecureContext(svid.current, trust));
  const offRotate = svid.onRotate(apply);
  const offTrust = trust.onChange(() => {
    apply();
    server.setTicketKeys(randomBytes(48));
  });
  return () => {
    offRotate();
    offTrust();
  };
}
