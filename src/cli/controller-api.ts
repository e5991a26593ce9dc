import { fromGrpcError } from '../proto/grpc-errors.js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ErrorCodes, FedgateError } from '../core/errors.js';
import { SpiffeId } from '../model/spiffe-id.js';
import {
  AdminClient,
  type AdminResponse,
  type BlackholeRequest,
  type DrillEvent,
  type ClusterRequest,
  type CreateTokenRequest,
  type CreateTokenResponse,
  type DeletePolicyRequest,
  type ListPoliciesRequest,
  type ListPoliciesResponse,
  type PutPoliciesRequest,
  type PutPoliciesResponse,
  type StatusRequest,
  type StatusResponse,
} from '../proto/gen/fedgate.js';
import { channelCredentials, clientOptions, grpc, type ServiceError } from '../proto/grpc-transport.js';
import { uriSans } from '../pki/pem.js';
import { PeerVerifier } from '../pki/peer-verifier.js';
import { checkServer } from '../pki/tls-options.js';
import { TrustBundle } from '../pki/trust-bundle.js';
import { TrustStore } from '../pki/trust-store.js';

/** Admin credentials on disk (tls.crt, tls.key, ca.crt), as the controller writes them to `<pkiDir>/admin`. */
export interface AdminCredentials {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export function readAdminCredentials(dir: string): AdminCredentials {
  const files = ['tls.crt', 'tls.key', 'ca.crt'].map((name) => join(dir, name));
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new FedgateError(ErrorCodes.CREDENTIALS_MISSING, `the admin credentials ${dir} are a file, not a directory of tls.crt, tls.key and ca.crt: point --credentials at <controller pkiDir>/admin`);
  }
  const missing = files.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new FedgateError(
      ErrorCodes.CREDENTIALS_MISSING,
      `no admin credentials in ${dir} (missing ${missing.map((file) => basename(file)).join(', ')}): the controller writes them to <pkiDir>/admin on first start; point --credentials at that directory or at one from "fedgate ca issue"`,
    );
  }
  const [certPem, keyPem, caPem] = files.map((file) => readFileSync(file, 'utf8')) as [string, string, string];
  return { certPem, keyPem, caPem };
}

/** A call the controller refused or could not answer; keeps the gRPC status for scripts and tests. */
export class ControllerCallError extends FedgateError {
  readonly status: string;
  readonly grpcCode: number;

  constructor(address: string, error: ServiceError) {
    const status = grpc.status[error.code] ?? String(error.code);
    super(fromGrpcError(error).code, `controller at ${address}: ${status}: ${error.details || error.message}`);
    this.status = status;
    this.grpcCode = error.code;
  }
}

/** The controller these credentials are for: the SPIFFE trust domain of their CA. */
export function expectedControllerId(credentials: AdminCredentials): SpiffeId {
  const ca = new X509Certificate(credentials.caPem);
  const trustDomain = uriSans(ca).map((uri) => SpiffeId.tryParse(uri)).find((id) => id !== undefined)?.trustDomain;
  if (!trustDomain) throw new FedgateError(ErrorCodes.CREDENTIALS_UNTRUSTED, 'the admin credentials\' ca.crt is not a fedgate controller CA (no SPIFFE trust domain): use the files the controller wrote to <pkiDir>/admin');
  return SpiffeId.controller(trustDomain);
}

/** The Admin service as promises. */
export interface AdminApi {
  status(request: StatusRequest): Promise<StatusResponse>;
  createToken(request: CreateTokenRequest): Promise<CreateTokenResponse>;
  removeCluster(request: ClusterRequest): Promise<AdminResponse>;
  drainCluster(request: ClusterRequest): Promise<AdminResponse>;
  undrainCluster(request: ClusterRequest): Promise<AdminResponse>;
  putPolicies(request: PutPoliciesRequest): Promise<PutPoliciesResponse>;
  deletePolicy(request: DeletePolicyRequest): Promise<AdminResponse>;
  listPolicies(request: ListPoliciesRequest): Promise<ListPoliciesResponse>;
  blackholeService(request: BlackholeRequest): Promise<AdminResponse>;
  recordDrill(request: DrillEvent): Promise<AdminResponse>;
}

export interface AdminConnection {
  call: AdminApi;
  close(): void;
}

/**
 * An admin connection to a controller: mutual TLS with the operator identity, the controller
 * checked by its SPIFFE ID. Every call has a deadline and fails with the controller's own message.
 */
export function connectAdmin(address: string, credentials: AdminCredentials, timeoutMs = 10_000): AdminConnection {
  const controllerId = expectedControllerId(credentials);
  const trustDomain = controllerId.trustDomain;
  const verifier = new PeerVerifier(new TrustStore([TrustBundle.fromPem(trustDomain, credentials.caPem, 1)]));
  const client = new AdminClient(
    address,
    channelCredentials({
      rootsPem: credentials.caPem,
      keyPem: credentials.keyPem,
      certPem: credentials.certPem,
      checkServerIdentity: (_host, cert) => checkServer(verifier, cert, (id) => (id.equals(controllerId) ? undefined : `expected ${controllerId.toString()}, got ${id.toString()}`)),
    }),
    clientOptions(),
  );
  const unary =
    <Req, Res>(method: keyof AdminApi) =>
    (request: Req): Promise<Res> =>
      new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: ServiceError | null, r: Res) => void) => void>)[method] as (
          req: Req,
          md: grpc.Metadata,
          opts: grpc.CallOptions,
          cb: (e: ServiceError | null, r: Res) => void,
        ) => void;
        fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
          if (error) reject(new ControllerCallError(address, error));
          else resolve(response);
        });
      });
  const call: AdminApi = {
    status: unary('status'),
    createToken: unary('createToken'),
    removeCluster: unary('removeCluster'),
    drainCluster: unary('drainCluster'),
    undrainCluster: unary('undrainCluster'),
    putPolicies: unary('putPolicies'),
    deletePolicy: unary('deletePolicy'),
    listPolicies: unary('listPolicies'),
    blackholeService: unary('blackholeService'),
    recordDrill: unary('recordDrill'),
  };
  return { call, close: () => client.close() };
}
