/**
 * fedgate errors across gRPC, both ways, in one place: a server turns a FedgateError into a gRPC
 * status and carries its stable code in the trailers; a client turns the status back into a
 * FedgateError with that code (or, from a peer that sent none, the code its status implies). A
 * caller then decides by code — `isTransient()` to retry — never by parsing message text.
 */
import { ErrorCodes, errorMessage, FedgateError, InputError, type ErrorCode } from '../core/errors.js';
import { grpc, type ServiceError } from './grpc-transport.js';

const CODE_KEY = 'fedgate-error-code';
const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes));

/** The gRPC status a fedgate error code is answered with. */
function statusOfCode(code: ErrorCode): grpc.status {
  switch (code) {
    case ErrorCodes.TOKEN_INVALID:
    case ErrorCodes.TOKEN_EXPIRED:
    case ErrorCodes.TOKEN_USED:
    case ErrorCodes.PEER_NO_CERTIFICATE:
    case ErrorCodes.PEER_UNTRUSTED:
    case ErrorCodes.PEER_SVID_INVALID:
    case ErrorCodes.PEER_TRUST_DOMAIN_MISMATCH:
      return grpc.status.UNAUTHENTICATED;
    case ErrorCodes.PERMISSION_DENIED:
      return grpc.status.PERMISSION_DENIED;
    case ErrorCodes.CLUSTER_EXISTS:
    case ErrorCodes.TRUST_DOMAIN_RESERVED:
      return grpc.status.ALREADY_EXISTS;
    case ErrorCodes.CLUSTER_NOT_FOUND:
      return grpc.status.NOT_FOUND;
    case ErrorCodes.BUNDLE_INVALID:
    case ErrorCodes.POLICY_INVALID:
    case ErrorCodes.PROTOCOL_INVALID:
    case ErrorCodes.SPIFFE_ID_INVALID:
    case ErrorCodes.CONFIG_INVALID:
    case ErrorCodes.USAGE:
      return grpc.status.INVALID_ARGUMENT;
    case ErrorCodes.LIMIT_EXCEEDED:
      return grpc.status.RESOURCE_EXHAUSTED;
    case ErrorCodes.STORE_UNAVAILABLE:
    case ErrorCodes.STORE_EPOCH_CHANGED:
    case ErrorCodes.UNAVAILABLE:
      return grpc.status.UNAVAILABLE;
    case ErrorCodes.STORE_CONFLICT:
      return grpc.status.ABORTED;
    default:
      return grpc.status.FAILED_PRECONDITION;
  }
}

/** The fedgate code a gRPC status implies, for a status that came without one (a foreign server, the transport itself). */
function codeOfStatus(status: grpc.status): ErrorCode {
  switch (status) {
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.CANCELLED:
      return ErrorCodes.UNAVAILABLE;
    case grpc.status.UNAUTHENTICATED:
      return ErrorCodes.PEER_UNTRUSTED;
    case grpc.status.PERMISSION_DENIED:
      return ErrorCodes.PERMISSION_DENIED;
    case grpc.status.ALREADY_EXISTS:
      return ErrorCodes.CLUSTER_EXISTS;
    case grpc.status.NOT_FOUND:
      return ErrorCodes.CLUSTER_NOT_FOUND;
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.UNIMPLEMENTED:
      return ErrorCodes.PROTOCOL_INVALID;
    case grpc.status.RESOURCE_EXHAUSTED:
      return ErrorCodes.LIMIT_EXCEEDED;
    case grpc.status.ABORTED:
      return ErrorCodes.STORE_CONFLICT;
    default:
      return ErrorCodes.PROCESS_FAILED;
  }
}

/** Server side: the error a handler passes to grpc-js's callback (or emits on a stream). */
export function toGrpcError(error: unknown): Partial<grpc.StatusObject> & Error {
  const message = errorMessage(error);
  const metadata = new grpc.Metadata();
  let code: grpc.status;
  if (error instanceof InputError) {
    code = grpc.status.INVALID_ARGUMENT;
    metadata.set(CODE_KEY, error.code);
  } else if (error instanceof FedgateError) {
    code = statusOfCode(error.code);
    metadata.set(CODE_KEY, error.code);
  } else {
    code = grpc.status.INTERNAL;
  }
  return Object.assign(new Error(message), { code, details: message, metadata });
}

/** A FedgateError that arrived over gRPC: its code, and the gRPC status it came with. */
export class RemoteError extends FedgateError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly grpcStatus: grpc.status,
  ) {
    super(code, message);
  }

  /** The status's name, as grpc-js spells it (UNAVAILABLE, PERMISSION_DENIED …). */
  get grpcStatusName(): string {
    return grpc.status[this.grpcStatus] ?? String(this.grpcStatus);
  }
}

/** Client side: the FedgateError a failed call means, its message prefixed with `context` when given. */
export function fromGrpcError(error: ServiceError, context = ''): RemoteError {
  const sent = error.metadata?.get(CODE_KEY)[0];
  const code = typeof sent === 'string' && KNOWN_CODES.has(sent) ? (sent as ErrorCode) : codeOfStatus(error.code);
  const details = error.details || error.message;
  return new RemoteError(code, context === '' ? details : `${context}: ${details}`, error.code);
}
