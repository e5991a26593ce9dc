import { PassThrough, Readable, Writable } from 'node:stream';
import { relayBody } from './body-relay.js';

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
});
