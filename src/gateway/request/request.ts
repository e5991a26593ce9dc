import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { RouteRule, ServicePolicy } from '../../policy/service-policy.js';
import type { BodyRecording } from './request-body.js';
import type { RouteEntry } from '../routing/routing-table.js';

export interface ServiceAddress {
  namespace: string;
  name: string;
  /** The clusterset port the client asked for. */
  port: number;
  /** `namespace/name` */
  key: string;
}

/** One request through a gateway's pipeline. Layers read what they need and annotate the result. */
export interface RequestContext {
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
  caller: string;
  /** Cluster the request comes from. */
  sourceCluster: string;
  readonly startedAt: number;
  /**
   * Why the request as a whole is over (client gone, overall timeout); undefined while it runs.
   * Plain fields and one callback rather than AbortSignals: cancellation is checked on every
   * request, and AbortController allocations showed in the profile of the hot path.
   */
  ended: 'client-closed' | 'timeout' | undefined;
  /** Set by the forwarder of the current attempt: gives that attempt up (resolving it as failed). */
  abortAttempt: ((reason: 'client-closed' | 'timeout') => void) | undefined;
  /** Some of the body reached an upstream: a retry needs the recording (see request-body.ts). */
  bodyStarted: boolean;
  /** The body as it went upstream, when the request may be replayed (gRPC, idempotent). */
  bodyRecording: BodyRecording | undefined;
  /** Clusters tried so far (a retry picks another). */
  readonly tried: Set<string>;
  /** The cluster of the current attempt. */
  cluster: string | undefined;
  /**
   * The current attempt goes back to a cluster that already failed this request (every candidate
   * was tried): it dials for real instead of failing fast while that peer's connect back-off runs.
   */
  redial: boolean;
  /** Outbound: what the service resolves to. */
  route: RouteEntry | undefined;
  policy: ServicePolicy;
  /** Outbound: the RoutePolicy rule the request matched, if any (it chooses the destination). */
  rule: RouteRule | undefined;
  attempts: number;
}

/** Ends the request (client gone, overall timeout) and gives up the attempt in flight. */
export function endRequest(ctx: RequestContext, reason: 'client-closed' | 'timeout'): void {
  if (ctx.ended) return;
  ctx.ended = reason;
  ctx.abortAttempt?.(reason);
}
