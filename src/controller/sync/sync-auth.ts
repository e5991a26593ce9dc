import { ErrorCodes, FedgateError } from '../../core/errors.js';
import type { SpiffeId } from '../../model/spiffe-id.js';
import type { Hello, SyncDown, SyncUp } from '../../proto/gen/fedgate.js';
import { peerCertificateOf, type ServerDuplexStream } from '../../proto/grpc-transport.js';
import type { PeerVerifier } from '../../pki/peer-verifier.js';
import type { CatalogState } from '../catalog-state.js';

/** Hello.instance: a pod name or host name with a pid and a random suffix fits easily. */
const INSTANCE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Who may hold a Sync stream: the gateway of a member cluster, with a gateway SVID of that
 * cluster's trust domain. Returns the cluster, or throws (PERMISSION_DENIED, or a peer error).
 */
export function authenticateGateway(call: ServerDuplexStream<SyncUp, SyncDown>, verifier: PeerVerifier, catalog: CatalogState): string {
  const certificate = peerCertificateOf(call);
  if (!certificate?.raw) throw new FedgateError(ErrorCodes.PEER_NO_CERTIFICATE, 'a gateway certificate is required');
  const id: SpiffeId = verifier.verifyPeerCertificate(certificate);
  const cluster = id.gatewayCluster;
  if (!cluster) throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `${id.toString()} is not a gateway identity (spiffe://<trust-domain>/fedgate/gateway/<cluster>)`);
  const record = catalog.clusters.get(cluster);
  if (!record) throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `cluster "${cluster}" is not a member of the federation`);
  if (record.trustDomain !== id.trustDomain) {
    throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `${id.toString()} is not of cluster ${cluster}'s trust domain ${record.trustDomain}`);
  }
  return cluster;
}

/** Why a Hello on a stream authenticated as `cluster` is refused, with the metric reason; undefined when it is fine. */
export function helloProblem(cluster: string, hello: Hello): { reason: 'wrong-cluster' | 'bad-instance'; error: FedgateError } | undefined {
  if (hello.cluster !== cluster) {
    return { reason: 'wrong-cluster', error: new FedgateError(ErrorCodes.PERMISSION_DENIED, `this stream is authenticated as the gateway of "${cluster}"; it may not speak for "${hello.cluster}"`) };
  }
  if (hello.instance !== '' && !INSTANCE_PATTERN.test(hello.instance)) {
    return {
      reason: 'bad-instance',
      error: new FedgateError(
        ErrorCodes.PROTOCOL_INVALID,
        `Hello.instance ${JSON.stringify(hello.instance.slice(0, 64))} is not an instance id: up to 128 letters, digits, ".", "_", ":" and "-", starting with a letter or digit`,
      ),
    };
  }
  return undefined;
}
