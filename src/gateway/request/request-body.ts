import type { Readable, Writable } from 'node:stream';
import { relayBody } from '../endpoint/body-relay.js';

/** What sending a request body reads of the request. */
export interface BodyFacts {
  readonly body: Readable | null;
  readonly grpc: boolean;
  readonly idempotent: boolean;
}

/** What sending a request body records of its progress (RequestState). */
export interface BodyProgress {
  bodyStarted: boolean;
  bodyRecording: BodyRecording | undefined;
}

/** Request bodies up to this size are kept while they go upstream, so a reset attempt can be replayed. */
export const REPLAY_BUFFER_BYTES = 64 * 1024;

/**
 * The chunks of a request body as they went upstream, kept (by reference, not copied) until the
 * body ended or grew past the limit. A body that ended within the limit can be sent again, whole,
 * to another cluster when the first one reset before answering: a unary gRPC call or an idempotent
 * request to a gateway that was killed in flight is then not lost.
 */
export class BodyRecording {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private overflowed = false;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    if (this.overflowed) return;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      this.overflowed = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(chunk);
  }

  finish(): void {
    this.ended = true;
  }

  /** The whole body is here. */
  get complete(): boolean {
    return this.ended && !this.overflowed;
  }

  replayTo(sink: Writable): void {
    for (const chunk of this.chunks) sink.write(chunk);
    sink.end();
  }
}

/** Whether a request may be sent again after its body went upstream: gRPC calls and idempotent methods. */
function replayEligible(request: BodyFacts): boolean {
  return request.grpc || request.idempotent;
}

/**
 * Sends the request body to an attempt's upstream stream: the client's stream the first time
 * (recorded when the request is eligible for a replay), the recording on a later attempt.
 */
export function sendRequestBody(request: BodyFacts, progress: BodyProgress, sink: Writable): void {
  const body = request.body;
  if (body === null) return;
  if (progress.bodyStarted) {
    if (progress.bodyRecording?.complete) progress.bodyRecording.replayTo(sink);
    else sink.destroy(new Error('the request body was already sent and cannot be replayed'));
    return;
  }
  progress.bodyStarted = true;
  if (replayEligible(request)) progress.bodyRecording = new BodyRecording(REPLAY_BUFFER_BYTES);
  relayBody(body, sink, progress.bodyRecording);
}

/** True while another attempt could send the request again in full. */
export function canResend(request: BodyFacts, progress: BodyProgress): boolean {
  return request.body === null || !progress.bodyStarted || progress.bodyRecording?.complete === true;
}
