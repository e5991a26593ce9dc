import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { PeerVerifier } from '../../src/pki/peer-verifier.js';
import type { Svid } from '../../src/pki/svid.js';
import { clientConnectionOptions, MTLS_SERVER_OPTIONS, serverSecureContext, type ServerIdentityExpectation } from '../../src/pki/tls-options.js';
import type { TrustStore } from '../../src/pki/trust-store.js';

/** A bare mutual-TLS server that greets verified peers with their SPIFFE ID and records every rejection. */
export interface MtlsTestServer {
  server: Server;
  port: number;
  rejections: string[];
  close(): Promise<void>;
}

export async function startMtlsServer(svid: Svid, trust: TrustStore): Promise<MtlsTestServer> {
  const verifier = new PeerVerifier(trust);
  const rejections: string[] = [];
  const server = createServer({ ...MTLS_SERVER_OPTIONS, ...serverSecureContext(svid, trust) }, (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    try {
      const id = verifier.verifySocket(socket);
      socket.end(`hello ${id.toString()}`);
    } catch (error) {
      rejections.push((error as Error).message);
      socket.destroy();
    }
  });
  server.on('tlsClientError', (error) => rejections.push(error.message));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    rejections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Connects, reads the greeting; rejects with the TLS or verification error. */
export function greet(port: number, svid: Svid, trust: TrustStore, expect?: ServerIdentityExpectation): Promise<string> {
  const verifier = new PeerVerifier(trust);
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', ...clientConnectionOptions(svid, trust, verifier, expect) });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => (data ? resolve(data) : reject(new Error('connection closed without a greeting'))));
  });
}
