import { PassThrough, Readable, Writable } from 'node:stream';
import { relayBody } from './body-relay.js';
import { endDelivery, startDelivery, type Delivery, type DirectBody } from '../../http2/index.js';

function slowSink(chunks: Buffer[], highWaterMark: number): Writable {
  return new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      setImmediate(callback);
    },
  });
}

describe('relayBody', () => {
  it('moves every byte in order and ends the sink', async () => {
    const parts = Array.from({ length: 200 }, (_, i) => Buffer.alloc(1024, i % 251));
    const received: Buffer[] = [];
    const sink = slowSink(received, 4096);
    relayBody(Readable.from(parts), sink);
    await new Promise((resolve) => sink.once('finish', resolve));
    expect(Buffer.concat(received).equals(Buffer.concat(parts))).toBe(true);
  });

  it('pauses the source while the sink is full (backpressure)', async () => {
    const source = new PassThrough({ highWaterMark: 1024 });
    const received: Buffer[] = [];
    const sink = slowSink(received, 1024);
    relayBody(source, sink);
    let refused = 0;
    for (let i = 0; i < 64; i++) if (!source.write(Buffer.alloc(1024, 1))) refused += 1;
    source.end();
    await new Promise((resolve) => sink.once('finish', resolve));
    // The writer saw backpressure: the relay did not swallow everything into the sink's buffer.
    expect(refused).toBeGreaterThan(0);
    expect(Buffer.concat(received).length).toBe(64 * 1024);
  });

  it('stops without ending the sink when the source closes before its end', async () => {
    const source = new PassThrough();
    const received: Buffer[] = [];
    const sink = slowSink(received, 1024);
    relayBody(source, sink);
    source.write(Buffer.from('partial'));
    await new Promise((resolve) => setImmediate(resolve));
    source.destroy();
    await new Promise((resolve) => source.once('close', resolve));
    expect(sink.writableEnded).toBe(false);
    expect(source.listenerCount('data')).toBe(0);
    expect(Buffer.concat(received).toString()).toBe('partial');
  });

  it('stops reading into a sink that was destroyed, without writing to it', async () => {
    const source = new PassThrough();
    const sink = slowSink([], 1024);
    const errors: Error[] = [];
    sink.on('error', (error) => errors.push(error));
    relayBody(source, sink);
    sink.destroy();
    await new Promise((resolve) => sink.once('close', resolve));
    source.write(Buffer.from('late'));
    source.end();
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual([]);
    expect(source.listenerCount('data')).toBe(0);
  });

  it('resumes a source that was paused before the relay started', async () => {
    const source = new PassThrough();
    source.pause();
    source.end(Buffer.from('body'));
    const received: Buffer[] = [];
    const sink = slowSink(received, 1024);
    relayBody(source, sink);
    await new Promise((resolve) => sink.once('finish', resolve));
    expect(Buffer.concat(received).toString()).toBe('body');
  });

  describe('with a source that delivers directly', () => {
    /** A body fed from outside, as undici feeds the HTTP/1.1 response body: push() or delivery. */
    class FedBody extends Readable implements DirectBody {
      ended = false;
      resumed = 0;
      private delivery: Delivery | undefined;
      override _read(): void {}
      deliverTo(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): boolean {
        if (this.delivery) return false;
        this.delivery = startDelivery(this, this.ended, onChunk, onEnd);
        return this.delivery !== undefined;
      }
      resumeDelivery(): void {
        if (this.delivery?.held) {
          this.delivery.held = false;
          this.resumed += 1;
        }
      }
      /** False: the producer should wait (the sink is full). */
      feed(chunk: Buffer): boolean {
        if (!this.delivery) return this.push(chunk);
        if (!this.delivery.onChunk(chunk)) this.delivery.held = true;
        return !this.delivery.held;
      }
      finish(): void {
        this.ended = true;
        if (this.delivery) endDelivery(this, this.delivery);
        else this.push(null);
      }
    }

    it('hands over what was buffered before the relay, then later chunks, and ends the source as a stream would', async () => {
      const source = new FedBody();
      source.feed(Buffer.from('early '));
      const received: Buffer[] = [];
      const sink = slowSink(received, 1024);
      const events: string[] = [];
      source.on('end', () => events.push('end'));
      const closed = new Promise((resolve) => source.once('close', resolve));
      source.on('close', () => events.push('close'));
      relayBody(source, sink);
      // Delivered, not streamed: the relay put no listener on the source.
      expect(source.listenerCount('data')).toBe(0);
      source.feed(Buffer.from('late'));
      source.finish();
      await new Promise((resolve) => sink.once('finish', resolve));
      await closed;
      expect(Buffer.concat(received).toString()).toBe('early late');
      expect(events).toEqual(['end', 'close']);
      expect(source.readableEnded).toBe(true);
    });

    it('relays a body that ended before the relay started', async () => {
      const source = new FedBody();
      source.feed(Buffer.from('whole'));
      source.finish();
      const closed = new Promise((resolve) => source.once('close', resolve));
      const received: Buffer[] = [];
      const sink = slowSink(received, 1024);
      relayBody(source, sink);
      await new Promise((resolve) => sink.once('finish', resolve));
      await closed;
      expect(Buffer.concat(received).toString()).toBe('whole');
      expect(source.readableEnded).toBe(true);
    });

    it('holds the source while the sink is full and resumes it on drain', async () => {
      const source = new FedBody();
      const received: Buffer[] = [];
      const sink = slowSink(received, 1024);
      relayBody(source, sink);
      let refused = 0;
      for (let i = 0; i < 16; i++) {
        if (source.feed(Buffer.alloc(1024, 2))) continue;
        // A producer that honours backpressure (undici pauses its socket) waits for the resume.
        refused += 1;
        const resumedBefore = source.resumed;
        while (source.resumed === resumedBefore) await new Promise((resolve) => setImmediate(resolve));
      }
      source.finish();
      await new Promise((resolve) => sink.once('finish', resolve));
      expect(refused).toBeGreaterThan(0);
      expect(source.resumed).toBeGreaterThan(0);
      expect(Buffer.concat(received).length).toBe(16 * 1024);
    });

    it('falls back to streaming when the source is already read as a stream', async () => {
      const source = new FedBody();
      const seen: Buffer[] = [];
      source.on('data', (chunk: Buffer) => seen.push(chunk));
      const received: Buffer[] = [];
      const sink = slowSink(received, 1024);
      relayBody(source, sink);
      source.feed(Buffer.from('both'));
      source.finish();
      await new Promise((resolve) => sink.once('finish', resolve));
      expect(Buffer.concat(received).toString()).toBe('both');
      expect(Buffer.concat(seen).toString()).toBe('both');
    });

    it('does not end the sink of a source destroyed before its end', async () => {
      const source = new FedBody();
      const received: Buffer[] = [];
      const sink = slowSink(received, 1024);
      relayBody(source, sink);
      source.feed(Buffer.from('partial'));
      source.destroy();
      source.finish();
      await new Promise((resolve) => source.once('close', resolve));
      expect(sink.writableEnded).toBe(false);
      expect(source.readableEnded).toBe(false);
    });
  });
});
