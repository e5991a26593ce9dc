import { randomBytes } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { Backoff, type BackoffOptions } from '../core/backoff.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, errorMessage, PkiError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { BACKDATE_MS } from './certificate-authority.js';
import type { Svid } from './svid.js';
import { serverSecureContext } from './tls-options.js';
import type { TrustStore } from './trust-store.js';

const MAX_TIMER_MS = 2_147_483_647;
/** No retry sooner than this, however little lifetime is left: a failing signer is not hammered. */
const MIN_RETRY_MS = 250;
const DEFAULT_RETRY: BackoffOptions = { initialMs: 1000, maxMs: 30_000, jitter: 0.2 };
/** Once expired the SVID is useless and every second counts: retries come at least this often. */
const EXPIRED_MAX_RETRY_MS = 10_000;

/** Where SVIDs come from: a local CA (synchronous) or a signer over the network. */
export type SvidIssuer = () => Svid | Promise<Svid>;

export interface RotatingSvidOptions {
  /** Re-issue when this fraction of the lifetime has passed; at most 0.5. */
  renewFraction?: number;
  clock?: Clock;
  log?: Logger;
  /** Delays between failed renewals; each is also capped to a quarter of the lifetime left. */
  retry?: BackoffOptions;
  /** An SVID already held (one persisted by an earlier run, or obtained by the caller). */
  initial?: Svid;
}

/** What a readiness check needs to know about a process's own certificate. */
export interface SvidHealth {
  state: 'valid' | 'expired';
  notAfter: Date;
  /** The last renewal failure, until a renewal succeeds. */
  lastError?: string;
}

/**
 * A leaf SVID that renews itself at half its lifetime (or earlier), so a renewal that fails has
 * the whole second half to be retried, with back-off, before anything expires. Half of the
 * lifetime counts from when the SVID was obtained, not from its backdated notBefore: with a
 * backdated start, a five-minute certificate would be due for renewal the moment it arrived.
 *
 * The issuer may be asynchronous (a signer across the network). A failed renewal keeps the
 * current SVID in use; once it has expired the failure is an error (`FEDGATE_ERR_CERTIFICATE_EXPIRED`
 * in the log, `health().state === 'expired'` for readiness) and renewal keeps being retried, so the
 * process recovers by itself when the issuer is back.
 */
export class RotatingSvid {
  private svid: Svid;
  private obtainedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inflight: Promise<Svid> | undefined;
  private failure: string | undefined;
  private readonly listeners = new Set<(svid: Svid) => void>();
  private readonly renewFraction: number;
  private readonly clock: Clock;
  private readonly backoff: Backoff;

  /** With a synchronous issuer the first SVID is issued here; an asynchronous one needs `initial` (see `obtain`). */
  constructor(
    private readonly issue: SvidIssuer,
    private readonly options: RotatingSvidOptions = {},
  ) {
    this.renewFraction = Math.min(0.5, options.renewFraction ?? 0.5);
    this.clock = options.clock ?? systemClock;
    this.backoff = new Backoff({ ...DEFAULT_RETRY, ...options.retry });
    if (options.initial) {
      this.svid = options.initial;
      // Not known for an SVID from disk: estimated as the end of the backdating.
      this.obtainedAt = Math.min(this.clock.now(), Math.min(options.initial.notBefore.getTime() + BACKDATE_MS, options.initial.notAfter.getTime()));
    } else {
      this.svid = this.issueNow();
      this.obtainedAt = this.clock.now();
    }
  }

  /** For an asynchronous issuer: the first SVID is `initial` when given, else awaited from the issuer. */
  static async obtain(issue: SvidIssuer, options: RotatingSvidOptions = {}): Promise<RotatingSvid> {
    const initial = options.initial ?? (await issue());
    return new RotatingSvid(issue, { ...options, initial });
  }

  get current(): Svid {
    return this.svid;
  }

  /** When the current SVID is due for renewal (ms since epoch). */
  get renewAt(): number {
    return this.obtainedAt + (this.svid.notAfter.getTime() - this.obtainedAt) * this.renewFraction;
  }

  health(): SvidHealth {
    return { state: this.clock.now() >= this.svid.notAfter.getTime() ? 'expired' : 'valid', notAfter: this.svid.notAfter, lastError: this.failure };
  }

  onRotate(listener: (svid: Svid) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.running = true;
    this.schedule(Math.max(0, this.renewAt - this.clock.now()));
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Renews now with a synchronous issuer (also used by CA rotation to move leaves onto the new CA). */
  rotate(): Svid {
    const svid = this.issueNow();
    this.install(svid);
    return svid;
  }

  /** Renews now; concurrent calls share one request to the issuer. */
  renew(): Promise<Svid> {
    if (this.inflight) return this.inflight;
    let issued: Svid | Promise<Svid>;
    try {
      issued = this.issue();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (!(issued instanceof Promise)) {
      this.install(issued);
      return Promise.resolve(issued);
    }
    return this.track(issued);
  }

  /** Makes `issued` the renewal in flight; it installs the SVID when it arrives. */
  private track(issued: Promise<Svid>): Promise<Svid> {
    this.inflight = issued.then(
      (svid) => {
        this.inflight = undefined;
        this.install(svid);
        return svid;
      },
      (error: unknown) => {
        this.inflight = undefined;
        throw error;
      },
    );
    return this.inflight;
  }

  private issueNow(): Svid {
    const issued = this.issue();
    if (issued instanceof Promise) {
      void issued.catch(() => undefined);
      throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, 'this SVID issuer is asynchronous: use RotatingSvid.obtain() and renew()');
    }
    return issued;
  }

  private install(svid: Svid): void {
    this.svid = svid;
    this.obtainedAt = this.clock.now();
    this.failure = undefined;
    this.backoff.reset();
    this.options.log?.info({ spiffeId: svid.spiffeId.toString(), serial: svid.certificate.serialNumber, notAfter: svid.notAfter.toISOString() }, 'certificate renewed');
    for (const listener of this.listeners) listener(svid);
  }

  private schedule(delay: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.attempt(), Math.min(delay, MAX_TIMER_MS));
    this.timer.unref();
  }

  private scheduleRenewal(): void {
    if (this.running) this.schedule(Math.max(0, this.renewAt - this.clock.now()));
  }

  /** One renewal attempt; a synchronous issuer is handled synchronously (no promise in between). */
  private attempt(): void {
    this.timer = undefined;
    let issued: Svid | Promise<Svid>;
    try {
      issued = this.inflight ?? this.issue();
    } catch (error) {
      this.failed(error);
      return;
    }
    if (!(issued instanceof Promise)) {
      this.install(issued);
      this.scheduleRenewal();
      return;
    }
    // Tracked, so that a renewal requested meanwhile shares this request.
    const renewal = this.inflight ?? this.track(issued);
    renewal.then(
      () => this.scheduleRenewal(),
      (error: unknown) => this.failed(error),
    );
  }

  private failed(error: unknown): void {
    if (!this.running) return;
    this.failure = errorMessage(error);
    const left = this.svid.notAfter.getTime() - this.clock.now();
    const backoff = this.backoff.next();
    if (left > 0) {
      const delay = Math.max(MIN_RETRY_MS, Math.min(backoff, left / 4));
      this.options.log?.warn({ err: this.failure, expiresInMs: left, retryInMs: delay }, 'certificate renewal failed; the current certificate stays in use, retrying');
      this.schedule(delay);
    } else {
      const delay = Math.min(backoff, EXPIRED_MAX_RETRY_MS);
      this.options.log?.error(
        { err: this.failure, code: ErrorCodes.CERTIFICATE_EXPIRED, expiredAt: this.svid.notAfter.toISOString(), retryInMs: delay },
        'certificate expired and could not be renewed; peers refuse it until renewal succeeds',
      );
      this.schedule(delay);
    }
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
