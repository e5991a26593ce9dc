import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { BodyRecording } from './request-body.js';

export interface ServiceAddress {
  namespace: string;
  name: string;
  /** The clusterset port the client asked for. */
  port: number;
  /** `namespace/name` */
  key: string;
}

/**
 * One request through a gateway, as the server stage read it: fixed from then on. What changes
 * while it is served (its end, the clusters tried, its body's progress) is its `RequestState`;
 * what belongs to one try is an `Attempt`.
 */
export interface Request {
  readonly direction: 'outbound' | 'inbound';
  readonly method: string;
  readonly path: string;
  /** `name.namespace.svc.clusterset.local:port`, as sent upstream. */
  readonly authority: string;
  readonly service: ServiceAddress;
  /** Headers for the upstream: cleaned of hop-by-hop headers and of any unverified identity. */
  readonly headers: OutgoingHttpHeaders;
  /** The request body, or null when there is none (GET, or END_STREAM with the headers). */
  readonly body: Readable | null;
  readonly grpc: boolean;
  readonly idempotent: boolean;
  /** SPIFFE ID of the caller: asserted by the outbound gateway, verified by the inbound one. */
  readonly caller: string;
  /** Cluster the request comes from. */
  readonly sourceCluster: string;
  readonly startedAt: number;
}

export type EndReason = 'client-closed' | 'timeout';

/**
 * What changes while a request is served, owned by the request's lifecycle: whether it ended (the
 * client went away, the overall timeout), the attempt in flight's abort, the clusters tried, and
 * how far its body went. Plain fields and one callback rather than AbortSignals: this is checked
 * on every request, and AbortController allocations showed in the profile of the hot path.
 */
export class RequestState {
  private endReason: EndReason | undefined;
  private abortCurrent: ((reason: EndReason) => void) | undefined;
  /** Clusters tried so far (a retry picks another). */
  readonly tried = new Set<string>();
  /** Attempts started, the first included. */
  attempts = 1;
  /** Some of the body reached an upstream: a retry needs the recording (see request-body.ts). */
  bodyStarted = false;
  /** The body as it went upstream, when the request may be replayed (gRPC, idempotent). */
  bodyRecording: BodyRecording | undefined = undefined;

  /** Why the request as a whole is over; undefined while it runs. */
  get ended(): EndReason | undefined {
    return this.endReason;
  }

  /** Ends the request (client gone, overall timeout) and gives up the attempt in flight. */
  end(reason: EndReason): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.abortCurrent?.(reason);
  }

  /** Set by the forwarder of the current attempt: how to give that attempt up. */
  onAbort(abort: (reason: EndReason) => void): void {
    this.abortCurrent = abort;
  }

  clearAbort(): void {
    this.abortCurrent = undefined;
  }

  /** Gives up the attempt in flight (a per-try timeout), leaving the request running. */
  abortAttempt(reason: EndReason): void {
    this.abortCurrent?.(reason);
  }
}

/** One try of a request: the cluster it goes to. */
export interface Attempt {
  readonly cluster: string;
  /**
   * The attempt goes back to a cluster that already failed this request (every candidate was
   * tried): it dials for real instead of failing fast while that peer's connect back-off runs.
   */
  readonly redial: boolean;
}
