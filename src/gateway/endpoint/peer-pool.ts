import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { systemClock, type Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { H2ClientSession, type H2ConnectionLimits, type H2ConnectionOptions } from '../../http2/index.js';

/**
 * Receive windows and header limit of gateway-to-gateway connections, on both ends: large windows,
 * since one connection carries many streams; what a slow reader leaves unread stays within the
 * connection window.
 */
export const PEER_CONNECTION: H2ConnectionOptions = {
  initialWindowSize: 4 * 1024 * 1024,
  sessionWindowSize: 32 * 1024 * 1024,
  maxHeaderListSize: 64 * 1024,
};

export class PoolError extends Error {
  constructor(
    readonly code: 'connect-failed' | 'overflow',
    message: string,
  ) {
    super(message);
  }
}

export interface PeerSession {
  session: H2ClientSession;
  active: number;
  started: number;
}

export interface PeerPoolOptions {
  cluster: string;
  /** The peer gateway's advertised addresses (tried in turn). */
  addresses: () => readonly string[];
  /** TLS options built from the current SVID and trust, checking the peer's SPIFFE ID. */
  tls: () => ConnectionOptions;
  maxConnections: number;
  maxPending: number;
  connectTimeoutMs: number;
  /** Streams per session before it is retired (0: unlimited). */
  maxRequestsPerConnection?: number;
  /** Limits of the HTTP/2 connections (the stack's defaults where unset). */
  http2?: Partial<H2ConnectionLimits>;
  /** Counts a connection's refusals by kind (fedgate_limit_refusals_total{listener="peer"}). */
  onLimit?: (kind: string) => void;
  log: Logger;
  /** Times the connect back-off (the system clock unless a test moves it). */
  clock?: Clock;
}

/**
 * Pooled, multiplexed HTTP/2-over-mTLS sessions to one remote gateway. Streams go to the session
 * with the fewest in flight; a new session is opened when every one is at the peer's concurrent
 * stream limit (up to maxConnections); past that, requests wait (up to maxPending) and then are
 * refused fast rather than queueing without bound.
 */
export class PeerPool {
  private readonly sessions: PeerSession[] = [];
  private connecting: Promise<PeerSession> | undefined;
  private readonly waiting: Array<{ resolve: (s: PeerSession) => void; reject: (e: Error) => void }> = [];
  private addressIndex = 0;
  private closed = false;
  /** Consecutive failed connects: while the peer is down, fail fast instead of dialling per request. */
  private connectFailures = 0;
  private nextConnectAt = 0;
  private lastConnectError = '';

  constructor(private readonly options: PeerPoolOptions) {}

  get cluster(): string {
    return this.options.cluster;
  }

  get size(): number {
    return this.sessions.length;
  }

  get inFlight(): number {
    return this.sessions.reduce((sum, s) => sum + s.active, 0);
  }

  /**
   * A session with room for one more stream; synchronous when one is ready (the common case).
   * `redial`: connect even while failed connects keep this pool failing fast. A first attempt fails
   * fast so the request moves to another cluster at once; when it comes back here (no other cluster
   * could serve it) one real connect beats refusing: the peer may have come up since (a gateway
   * that was still starting, a restart) while the back-off runs.
   */
  acquire(redial = false): PeerSession | Promise<PeerSession> {
    if (this.closed) return Promise.reject(new PoolError('connect-failed', `cluster ${this.options.cluster} left the federation`));
    const best = this.leastLoaded();
    if (best && best.active < this.limitOf(best)) {
      best.active += 1;
      best.started += 1;
      return best;
    }
    if (this.sessions.length < this.options.maxConnections) {
      if (redial) this.nextConnectAt = 0;
      return this.connectSession().then((session) => {
        session.active += 1;
        session.started += 1;
        return session;
      });
    }
    if (this.waiting.length >= this.options.maxPending) {
      return Promise.reject(new PoolError('overflow', `${this.waiting.length} requests already wait for a stream to ${this.options.cluster} (max pending)`));
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Returns a stream slot; hands it to a waiting request first. */
  release(peer: PeerSession): void {
    peer.active -= 1;
    const max = this.options.maxRequestsPerConnection ?? 0;
    if (max > 0 && peer.started >= max) {
      // Retired: no new streams; it closes once the streams in flight are done.
      this.remove(peer);
      peer.session.close();
    }
    this.serveWaiting();
  }

  private serveWaiting(): void {
    while (this.waiting.length > 0) {
      const peer = this.leastLoaded();
      if (peer && peer.active < this.limitOf(peer)) {
        const waiter = this.waiting.shift() as { resolve: (s: PeerSession) => void };
        peer.active += 1;
        peer.started += 1;
        waiter.resolve(peer);
        continue;
      }
      if (this.sessions.length < this.options.maxConnections && !this.connecting) {
        void this.connectSession().then(
          () => this.serveWaiting(),
          () => undefined,
        );
      }
      return;
    }
  }

  private limitOf(peer: PeerSession): number {
    return peer.session.remoteSettings?.maxConcurrentStreams ?? 100;
  }

  private leastLoaded(): PeerSession | undefined {
    let best: PeerSession | undefined;
    for (const peer of this.sessions) {
      if (peer.session.closed || peer.session.destroyed) continue;
      if (!best || peer.active < best.active) best = peer;
    }
    return best;
  }

  private connectSession(): Promise<PeerSession> {
    if (this.connecting) return this.connecting;
    const now = (this.options.clock ?? systemClock).now();
    if (now < this.nextConnectAt) {
      return Promise.reject(new PoolError('connect-failed', `${this.options.cluster} unreachable (${this.lastConnectError}); next attempt in ${this.nextConnectAt - now}ms`));
    }
    const addresses = this.options.addresses();
    if (addresses.length === 0) return Promise.reject(new PoolError('connect-failed', `cluster ${this.options.cluster} advertises no gateway address`));
    const address = addresses[this.addressIndex % addresses.length] as string;
    this.connecting = this.open(address).then(
      (peer) => {
        this.connecting = undefined;
        this.connectFailures = 0;
        this.nextConnectAt = 0;
        this.sessions.push(peer);
        return peer;
      },
      (error: unknown) => {
        this.connecting = undefined;
        this.addressIndex += 1;
        this.connectFailures += 1;
        this.lastConnectError = errorMessage(error);
        // Fail fast for a short, growing while: requests then fail over at once instead of each
        // waiting for its own connect to time out.
        this.nextConnectAt = (this.options.clock ?? systemClock).now() + Math.min(50 * 2 ** Math.min(this.connectFailures - 1, 5), 1000);
        const failure = new PoolError('connect-failed', `cannot connect to the gateway of ${this.options.cluster} at ${address}: ${this.lastConnectError}`);
        for (const waiter of this.waiting.splice(0)) waiter.reject(failure);
        throw failure;
      },
    );
    return this.connecting;
  }

  private open(address: string): Promise<PeerSession> {
    const target = parseHostPort(address);
    if (!target) return Promise.reject(new Error(`"${address}" is not host:port`));
    const tls = this.options.tls();
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ ...tls, host: target.host, port: target.port, ALPNProtocols: ['h2'], servername: 'fedgate' });
      // No Nagle on a multiplexed session: small frames (headers, PINGs, window updates) must not wait.
      socket.setNoDelay(true);
      let session: H2ClientSession | undefined;
      const timer = setTimeout(() => {
        const error = new Error(`connect timed out after ${this.options.connectTimeoutMs}ms`);
        if (session) session.destroy(error);
        else socket.destroy(error);
      }, this.options.connectTimeoutMs);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        socket.off('error', fail);
        if (socket.alpnProtocol !== 'h2') {
          socket.destroy();
          fail(new Error(`the peer did not agree to HTTP/2 (ALPN ${socket.alpnProtocol || 'none'})`));
          return;
        }
        const opened = new H2ClientSession(socket, { ...PEER_CONNECTION, ...this.options.http2 });
        if (this.options.onLimit) opened.on('limit', this.options.onLimit);
        session = opened;
        const failEarly = (error: Error): void => fail(error);
        const closedEarly = (): void => fail(new Error('the peer closed the connection before its HTTP/2 settings'));
        opened.once('error', failEarly);
        opened.once('close', closedEarly);
        opened.once('connect', () => {
          clearTimeout(timer);
          opened.off('error', failEarly);
          opened.off('close', closedEarly);
          const peer: PeerSession = { session: opened, active: 0, started: 0 };
          opened.on('error', (error: Error) => this.options.log.debug({ err: errorMessage(error) }, 'peer session error'));
          opened.once('close', () => this.remove(peer));
          opened.once('goaway', () => this.remove(peer));
          opened.unref();
          resolve(peer);
        });
      });
    });
  }

  private remove(peer: PeerSession): void {
    const index = this.sessions.indexOf(peer);
    if (index !== -1) this.sessions.splice(index, 1);
  }

  /** A PING over a pooled session (connecting one if needed); resolves with the round trip, or throws. */
  async ping(timeoutMs: number): Promise<number> {
    let peer = this.leastLoaded();
    if (!peer) {
      this.nextConnectAt = 0;
      peer = await this.connectSession();
    }
    const session = peer.session;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A session that stops answering PINGs is dead weight: drop it so traffic reconnects.
        session.destroy(new Error('PING timed out'));
        reject(new Error(`no PING answer within ${timeoutMs}ms`));
      }, timeoutMs);
      const sent = session.ping((error, duration) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(duration);
      });
      if (!sent) {
        clearTimeout(timer);
        reject(new Error('too many unacknowledged PINGs'));
      }
    });
  }

  /** Closes every session: the cluster left, or its trust changed. */
  close(reason = 'closed'): void {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(new PoolError('connect-failed', `${this.options.cluster}: ${reason}`));
    for (const peer of this.sessions.splice(0)) peer.session.destroy();
  }

  /** Replaced (a policy resized it): streams in flight finish; new requests go to the replacement. */
  retire(): void {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(new PoolError('connect-failed', `${this.options.cluster}: connection pool resized`));
    this.recycle();
  }

  /** Drops every session gracefully (no new streams; in-flight ones finish): new credentials, new trust. */
  recycle(): void {
    for (const peer of this.sessions.splice(0)) peer.session.close();
  }
}

