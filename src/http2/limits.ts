/**
 * The resource limits of fedgate's HTTP/2 connections (both roles), their defaults, and the closed
 * set of refusals a connection reports through its 'limit' event. docs/http2-limits.md is the
 * table of these; a change here is a change there.
 */

/**
 * Why a connection refused something. Each is reported once per refusal as
 * `connection.on('limit', (kind: H2LimitKind, scope: H2LimitScope) => …)`: scope 'stream' when one
 * stream was refused or reset, 'connection' when the whole connection was ended for it.
 */
export type H2LimitKind =
  /** Bytes queued for a peer that does not read: over the hard cap, or over the soft cap for longer than the stall timeout. */
  | 'write-queue'
  /** A stream's own outgoing buffer grew past maxStreamBufferedBytes (a writer that ignores backpressure). */
  | 'stream-buffer'
  /** A stream had data to send and no flow-control window for zeroWindowTimeoutMs. */
  | 'zero-window'
  /** A SETTINGS frame with more than maxSettingsEntries entries, or SETTINGS frames faster than allowed. */
  | 'settings-flood'
  /** PING frames faster than allowed while no data flows (CVE-2019-9512). */
  | 'ping-flood'
  /** Streams reset by the peer before they were answered, faster than allowed (rapid reset, CVE-2023-44487). */
  | 'rst-flood'
  /** Empty DATA frames (or padding only) faster than allowed (CVE-2019-9518). */
  | 'empty-frames'
  /** A stream refused above SETTINGS_MAX_CONCURRENT_STREAMS (stream), or refused streams faster than allowed (connection). */
  | 'streams'
  /** A header list above maxHeaderListSize (stream, answered 431), or a header block too large or in too many CONTINUATION frames (connection). */
  | 'header-size'
  /** A header block left unfinished for headersTimeoutMs (slowloris). */
  | 'headers-timeout'
  /** A connection with nothing open and nothing moving for idleTimeoutMs (closed gracefully). */
  | 'idle';

export type H2LimitScope = 'stream' | 'connection';

/** Every kind, in the order of docs/http2-limits.md (for metrics that want all label values up front). */
export const H2_LIMIT_KINDS: readonly H2LimitKind[] = ['write-queue', 'stream-buffer', 'zero-window', 'settings-flood', 'ping-flood', 'rst-flood', 'empty-frames', 'streams', 'header-size', 'headers-timeout', 'idle'];

/** The limits every connection enforces, whichever its role. All optional in the options, with these defaults. */
export interface H2ConnectionLimits {
  /**
   * Bytes queued for the socket (ours and the socket's own buffer) from which the connection stops
   * producing: DATA and its writers' callbacks are held, finished streams keep counting against
   * the concurrent-stream limit until the queue drains. Default 1 MiB.
   */
  maxWriteQueueBytes: number;
  /** Bytes queued for the socket past which the connection ends at once (GOAWAY ENHANCE_YOUR_CALM). Default 4 MiB. */
  writeQueueHardLimitBytes: number;
  /** How long the queue may stay at or above maxWriteQueueBytes before the connection ends (ENHANCE_YOUR_CALM). Default 30 s. */
  writeStallTimeoutMs: number;
  /** Outgoing bytes one stream may buffer (its writer's queue and the chunk waiting for window); past it the stream is reset. Default 1 MiB. */
  maxStreamBufferedBytes: number;
  /** A stream with data to send and no flow-control window for this long is reset (ENHANCE_YOUR_CALM). Default 30 s. */
  zeroWindowTimeoutMs: number;
  /** Entries one SETTINGS frame may carry (RFC 9113 allows repeats; nghttp2 refuses more than 32). Default 32. */
  maxSettingsEntries: number;
  /** SETTINGS frames accepted in a burst… Default 20. */
  settingsBurst: number;
  /** …and per second after it. Default 5. */
  settingsRatePerSecond: number;
  /** PING frames accepted in a burst while no data flows (a PING after we sent data is always free: gRPC's BDP probes). Default 100. */
  pingBurst: number;
  /** …and per second after it. Default 10. */
  pingRatePerSecond: number;
  /** After a GOAWAY for an error, how long the connection waits for it (and what was queued before it) to leave before it drops the socket. Default 1 s. */
  closeTimeoutMs: number;
  /** A header block split over CONTINUATION frames must be complete within this. Default 10 s. */
  headersTimeoutMs: number;
}

export const H2_CONNECTION_LIMIT_DEFAULTS: Readonly<H2ConnectionLimits> = Object.freeze({
  maxWriteQueueBytes: 1024 * 1024,
  writeQueueHardLimitBytes: 4 * 1024 * 1024,
  writeStallTimeoutMs: 30_000,
  maxStreamBufferedBytes: 1024 * 1024,
  zeroWindowTimeoutMs: 30_000,
  maxSettingsEntries: 32,
  settingsBurst: 20,
  settingsRatePerSecond: 5,
  pingBurst: 100,
  pingRatePerSecond: 10,
  closeTimeoutMs: 1000,
  headersTimeoutMs: 10_000,
});

/** The limits with every unset one at its default; throws RangeError on a value that is not a positive number. */
export function resolveConnectionLimits(options: Partial<H2ConnectionLimits>): Readonly<H2ConnectionLimits> {
  const resolved = { ...H2_CONNECTION_LIMIT_DEFAULTS };
  for (const key of Object.keys(H2_CONNECTION_LIMIT_DEFAULTS) as Array<keyof H2ConnectionLimits>) {
    const value = options[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`HTTP/2 limit ${key} must be a positive number, not ${String(value)}`);
    resolved[key] = value;
  }
  if (resolved.writeQueueHardLimitBytes < resolved.maxWriteQueueBytes) {
    throw new RangeError(`HTTP/2 limit writeQueueHardLimitBytes (${resolved.writeQueueHardLimitBytes}) is below maxWriteQueueBytes (${resolved.maxWriteQueueBytes})`);
  }
  return Object.freeze(resolved);
}

/** A token bucket: `burst` at once, refilled at `ratePerSecond`. */
export class TokenBucket {
  private tokens: number;
  private checkedAt = performance.now();

  constructor(
    private readonly burst: number,
    private readonly ratePerSecond: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one token; false when the bucket is empty (the caller refuses). */
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.checkedAt) / 1000) * this.ratePerSecond);
    this.checkedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Gives one token back (up to the burst): good behaviour earns room. */
  give(): void {
    if (this.tokens < this.burst) this.tokens += 1;
  }
}
