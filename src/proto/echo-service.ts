/**
 * A small gRPC echo service (JSON messages, no .proto needed) used by the demo's sample services,
 * the drill load generator and the tests: unary, server streaming, client streaming and bidi.
 */
import * as grpc from '@grpc/grpc-js';

export interface EchoMessage {
  text: string;
  /** Who answered: the cluster of the backend (sample services fill it in). */
  servedBy?: string;
  count?: number;
  /** Milliseconds the server waits before answering (tests of deadlines). */
  delayMs?: number;
  /** gRPC status the server fails the call with (tests of status propagation). */
  failWith?: number;
}

const serialize = (value: EchoMessage): Buffer => Buffer.from(JSON.stringify(value));
const deserialize = (bytes: Buffer): EchoMessage => JSON.parse(bytes.toString('utf8')) as EchoMessage;

const method = <RS extends boolean, SS extends boolean>(name: string, requestStream: RS, responseStream: SS) => ({
  path: `/fedgate.demo.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
});

export const EchoServiceDefinition = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
};

export type EchoClient = grpc.Client & {
  unary(request: EchoMessage, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: EchoMessage) => void): grpc.ClientUnaryCall;
  serverStream(request: EchoMessage, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<EchoMessage>;
  clientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: EchoMessage) => void): grpc.ClientWritableStream<EchoMessage>;
  bidi(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<EchoMessage, EchoMessage>;
};

const EchoClientConstructor = grpc.makeGenericClientConstructor(EchoServiceDefinition as never, 'fedgate.demo.Echo') as unknown as new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => EchoClient;

/** A plaintext (h2c) client, as a local workload talks to its gateway's outbound listener. */
export function echoClient(address: string, authority: string): EchoClient {
  return new EchoClientConstructor(address, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority, 'grpc.enable_retries': 0 });
}

function delay(ms: number | undefined): Promise<void> {
  return ms ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/** Starts the echo service; every answer names `servedBy`. Resolves with the bound port. */
export async function startEchoServer(servedBy: string, address: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(EchoServiceDefinition as never, {
    unary: (call: grpc.ServerUnaryCall<EchoMessage, EchoMessage>, callback: grpc.sendUnaryData<EchoMessage>) => {
      void delay(call.request.delayMs).then(() => {
        if (call.request.failWith) callback({ code: call.request.failWith, details: `failed on purpose by ${servedBy}` } as grpc.ServiceError);
        else callback(null, { text: call.request.text, servedBy, count: 1 });
      });
    },
    serverStream: (call: grpc.ServerWritableStream<EchoMessage, EchoMessage>) => {
      const count = call.request.count ?? 3;
      void (async () => {
        for (let i = 0; i < count; i++) {
          if (call.cancelled) return;
          call.write({ text: `${call.request.text} #${i}`, servedBy, count: i });
          await delay(call.request.delayMs);
        }
        call.end();
      })();
    },
    clientStream: (call: grpc.ServerReadableStream<EchoMessage, EchoMessage>, callback: grpc.sendUnaryData<EchoMessage>) => {
      const texts: string[] = [];
      call.on('data', (m: EchoMessage) => texts.push(m.text));
      call.on('end', () => callback(null, { text: texts.join(','), servedBy, count: texts.length }));
    },
    bidi: (call: grpc.ServerDuplexStream<EchoMessage, EchoMessage>) => {
      call.on('data', (m: EchoMessage) => call.write({ text: m.text.toUpperCase(), servedBy }));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

export { grpc as grpcForEcho };
