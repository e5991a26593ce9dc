import type { Readable } from 'node:stream';

/**
 * A body that can hand its chunks straight to a relay instead of through its Readable buffer and
 * events. Each Readable step a body takes costs a nextTick, and Node 20 builds every nextTick's
 * record with computed keys, which V8 creates in its runtime: a small response read as a stream
 * took seven of them per hop (maybeReadMore, emitReadable, resume, three endReadable, close).
 * Delivered directly it takes two (the 'end' and 'close' the stream still emits, so that owners
 * who watch the stream's own events see the same lifecycle).
 */
export interface DirectBody {
  /**
   * From now on, chunks go to `onChunk` and the end to `onEnd`; what is buffered already goes
   * first. False, and nothing changes, when the body is already read as a stream. When `onChunk`
   * returns false the body holds further data (and its flow-control credit) until
   * `resumeDelivery()`.
   */
  deliverTo(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): boolean;
  resumeDelivery(): void;
}

/** What a direct body keeps while it delivers. */
export interface Delivery {
  readonly onChunk: (chunk: Buffer) => boolean;
  readonly onEnd: () => void;
  /** The relay's sink is full: hold data and credit until resumeDelivery(). */
  held: boolean;
}

/**
 * Starts direct delivery for a Readable that has not been read yet: hands over what it buffered
 * and, when its end was pushed already, ends the delivery too. `ended`: the end was pushed.
 */
export function startDelivery(body: Readable, ended: boolean, onChunk: (chunk: Buffer) => boolean, onEnd: () => void): Delivery | undefined {
  if (body.destroyed || body.readableFlowing !== null || body.listenerCount('data') > 0 || body.listenerCount('readable') > 0) return undefined;
  const delivery: Delivery = { onChunk, onEnd, held: false };
  if (body.readableLength > 0) {
    // read() of an ended body also schedules its 'end'.
    const buffered = body.read() as Buffer | null;
    if (buffered !== null) delivery.held = !onChunk(buffered);
  } else if (ended) {
    body.read(0);
  }
  if (ended) onEnd();
  return delivery;
}

/**
 * Ends a directly delivered body: the relay's sink first, then the Readable's own 'end'. A
 * destroyed body stopped short, and its sink must not look complete.
 */
export function endDelivery(body: Readable, delivery: Delivery): void {
  if (body.destroyed) return;
  delivery.onEnd();
  body.push(null);
  // Nothing reads the stream, so its 'end' (and with it autoDestroy's 'close') needs this nudge.
  body.read(0);
}
