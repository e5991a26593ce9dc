/**
 * The gRPC pieces fedgate's processes use, so that @grpc/grpc-js stays inside src/proto. TLS
 * contexts are built by the callers (with pki); this file only hands them to grpc-js.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';

export { grpc };
export type { Metadata, ServerDuplexStream, ServerUnaryCall, ServiceError, sendUnaryData, ClientDuplexStream } from '@grpc/grpc-js';
export const GrpcStatus = grpc.status;

/**
 * Server credentials whose secure context can be replaced while serving: the controller's trust
 * grows with every cluster that joins and its own certificate rotates, and grpc-js applies an
 * update with `setSecureContext` to new handshakes only.
 */
export class UpdatableServerCredentials extends grpc.ServerCredentials {
  constructor(
    private readonly requireClientCertificate: boolean,
    contextOptions: SecureContextOptions,
  ) {
    super(
      requireClientCertificate ? { requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' } : { requestCert: false, minVersion: 'TLSv1.3' },
      contextOptions,
    );
  }

  update(contextOptions: SecureContextOptions): void {
    this.updateSecureContextOptions(contextOptions);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** The verified client certificate of a call (TLS already checked the chain). */
export function peerCertificateOf(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }): PeerCertificate | undefined {
  return call.getAuthContext()?.sslPeerCertificate;
}

export interface ChannelTls {
  rootsPem: string;
  keyPem?: string;
  certPem?: string;
  /** Runs instead of the host-name check (SPIFFE identities are not host names). */
  checkServerIdentity: (host: string, certificate: PeerCertificate) => Error | undefined;
}

export function channelCredentials(tls: ChannelTls): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    Buffer.from(tls.rootsPem),
    tls.keyPem ? Buffer.from(tls.keyPem) : null,
    tls.certPem ? Buffer.from(tls.certPem) : null,
    { checkServerIdentity: tls.checkServerIdentity as never },
  );
}

/** Server limits: message size, keepalive, and how often a client may ping. */
export function serverOptions(maxMessageBytes: number): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    'grpc.max_concurrent_streams': 100,
  };
}

export function clientOptions(maxMessageBytes = 64 * 1024 * 1024): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // SPIFFE identities are checked instead of host names; a fixed SNI name also avoids sending
    // an IP address as ServerName, which RFC 6066 forbids.
    'grpc.ssl_target_name_override': 'fedgate',
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 5_000,
  };
}

export function bindServer(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}

export function grpcError(code: grpc.status, message: string): Partial<grpc.StatusObject> & Error {
  return Object.assign(new Error(message), { code, details: message });
}
