import { PassThrough, Readable, Writable } from 'node:stream';
import { canResend as canResendOf, REPLAY_BUFFER_BYTES, sendRequestBody as sendOf, type BodyFacts, type BodyProgress } from './request-body.js';

type Context = BodyFacts & BodyProgress;

function context(body: Readable | null, options: { grpc?: boolean; idempotent?: boolean } = {}): Context {
  return { body, grpc: options.grpc ?? false, idempotent: options.idempotent ?? false, bodyStarted: false, bodyRecording: undefined };
}

const sendRequestBody = (ctx: Context, sink: Writable): void => sendOf(ctx, ctx, sink);
const canResend = (ctx: Context): boolean => canResendOf(ctx, ctx);

function collect(): { sink: Writable; done: Promise<Buffer> } {
  const chunks: Buffer[] = [];
  let finish!: (b: Buffer) => void;
  const done = new Promise<Buffer>((resolve) => (finish = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
    final(cb) {
      finish(Buffer.concat(chunks));
      cb();
    },
  });
  return { sink, done };
}

describe('request bodies that may be replayed on another cluster', () => {
  it('replays a unary gRPC body whole on the second attempt', async () => {
    const source = new PassThrough();
    const ctx = context(source, { grpc: true });
    const first = collect();
    sendRequestBody(ctx, first.sink);
    source.write(Buffer.from('hello '));
    source.end(Buffer.from('world'));
    expect((await first.done).toString()).toBe('hello world');
    expect(canResend(ctx)).toBe(true);
    const second = collect();
    sendRequestBody(ctx, second.sink);
    expect((await second.done).toString()).toBe('hello world');
  });

  it('does not replay a non-idempotent HTTP body, nor one larger than the buffer, nor one still arriving', async () => {
    const post = new PassThrough();
    const postCtx = context(post);
    sendRequestBody(postCtx, collect().sink);
    post.end('x');
    await new Promise((resolve) => setImmediate(resolve));
    expect(canResend(postCtx)).toBe(false);

    const big = new PassThrough();
    const bigCtx = context(big, { idempotent: true });
    const bigSink = collect();
    sendRequestBody(bigCtx, bigSink.sink);
    big.end(Buffer.alloc(REPLAY_BUFFER_BYTES + 1));
    expect((await bigSink.done).length).toBe(REPLAY_BUFFER_BYTES + 1);
    expect(canResend(bigCtx)).toBe(false);

    const streaming = new PassThrough();
    const streamingCtx = context(streaming, { grpc: true });
    sendRequestBody(streamingCtx, collect().sink);
    streaming.write('part');
    await new Promise((resolve) => setImmediate(resolve));
    expect(canResend(streamingCtx)).toBe(false);
    const refused = collect();
    const errors: string[] = [];
    refused.sink.on('error', (error: Error) => errors.push(error.message));
    sendRequestBody(streamingCtx, refused.sink);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual(['the request body was already sent and cannot be replayed']);
    expect(refused.sink.destroyed).toBe(true);
  });

  it('a request without a body, or whose body was not sent yet, can always be sent again', () => {
    expect(canResend(context(null))).toBe(true);
    expect(canResend(context(Readable.from([]) as Readable))).toBe(true);
  });
});
