import type { Readable, Writable } from 'node:stream';

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

function isDirectBody(source: Readable): source is Readable & DirectBody {
  return typeof (source as Partial<DirectBody>).deliverTo === 'function';
}

/**
 * Moves a body from an upstream to a downstream (or back): what `source.pipe(sink)` does for one
 * request, with backpressure and end-of-stream, but with three listeners instead of pipe's eight
 * and no 'pipe'/'unpipe' events, or none at all when the source delivers directly. Every request
 * crosses two of these per gateway, and pipe's bookkeeping showed in the profile of the request
 * path.
 *
 * The relay stops, leaving the sink open, when the sink is destroyed or the source errors or
 * closes early; the callers decide what an incomplete body means (reset, destroy) from the
 * streams' own 'close' events, as they did with pipe.
 */
export function relayBody(source: Readable, sink: Writable): void {
  if (isDirectBody(source) && relayDirect(source, sink)) return;
  let waitingForDrain = false;
  const stop = (): void => {
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('close', stop);
    if (waitingForDrain) sink.off('drain', onDrain);
    sink.off('close', stop);
  };
  function onData(chunk: Buffer): void {
    if (sink.destroyed) {
      stop();
      return;
    }
    if (!sink.write(chunk) && !waitingForDrain) {
      waitingForDrain = true;
      source.pause();
      sink.once('drain', onDrain);
    }
  }
  function onDrain(): void {
    waitingForDrain = false;
    source.resume();
  }
  function onEnd(): void {
    stop();
    if (!sink.destroyed) sink.end();
  }
  source.on('data', onData);
  source.once('end', onEnd);
  // 'close' without 'end' (reset, destroy): stop relaying; the sink's owner sees the source close.
  source.once('close', stop);
  sink.once('close', stop);
  if (source.isPaused()) source.resume();
}

function relayDirect(source: Readable & DirectBody, sink: Writable): boolean {
  let waitingForDrain = false;
  const onDrain = (): void => {
    waitingForDrain = false;
    source.resumeDelivery();
  };
  return source.deliverTo(
    (chunk) => {
      // A destroyed sink's owner resets the source; until then its data is dropped, not held.
      if (sink.destroyed || sink.write(chunk)) return true;
      if (!waitingForDrain) {
        waitingForDrain = true;
        sink.once('drain', onDrain);
      }
      return false;
    },
    () => {
      if (!sink.destroyed) sink.end();
    },
  );
}
