import type { Readable, Writable } from 'node:stream';
import type { DirectBody } from '../../http2/index.js';

/** Keeps what a relay moved (a request body that may need replaying). */
export interface BodyRecorder {
  add(chunk: Buffer): void;
  finish(): void;
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
export function relayBody(source: Readable, sink: Writable, recording?: BodyRecorder): void {
  if (isDirectBody(source) && relayDirect(source, sink, recording)) return;
  let waitingForDrain = false;
  const stop = (): void => {
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('close', stop);
    if (waitingForDrain) sink.off('drain', onDrain);
    sink.off('close', stop);
  };
  function onData(chunk: Buffer): void {
    recording?.add(chunk);
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
    recording?.finish();
    if (!sink.destroyed) sink.end();
  }
  source.on('data', onData);
  source.once('end', onEnd);
  // 'close' without 'end' (reset, destroy): stop relaying; the sink's owner sees the source close.
  source.once('close', stop);
  sink.once('close', stop);
  if (source.isPaused()) source.resume();
}

function relayDirect(source: Readable & DirectBody, sink: Writable, recording: BodyRecorder | undefined): boolean {
  let waitingForDrain = false;
  const onDrain = (): void => {
    waitingForDrain = false;
    source.resumeDelivery();
  };
  return source.deliverTo(
    (chunk) => {
      recording?.add(chunk);
      // A destroyed sink's owner resets the source; until then its data is dropped, not held.
      if (sink.destroyed || sink.write(chunk)) return true;
      if (!waitingForDrain) {
        waitingForDrain = true;
        sink.once('drain', onDrain);
      }
      return false;
    },
    () => {
      recording?.finish();
      if (!sink.destroyed) sink.end();
    },
  );
}
