import { ErrorCodes, errorMessage, FedgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { ClusterRecord } from '../../model/catalog.js';
import { hashSecret, parseJoinToken } from '../../model/join-token.js';
import { bundleToProto, clusterFromProto } from '../../proto/convert.js';
import type { JoinRequest, JoinResponse } from '../../proto/gen/fedgate.js';
import type { sendUnaryData, ServerUnaryCall } from '../../proto/grpc-transport.js';
import { toGrpcError } from '../../proto/grpc-errors.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import type { Store } from '../../store/store.js';
import type { CatalogState } from '../catalog-state.js';

export interface JoinServiceOptions {
  store: Store;
  catalog: CatalogState;
  log: Logger;
  federation: string;
  /** Known once the API listener is bound. */
  apiAddress: () => string;
  controllerSpiffeId: string;
  controllerCaPem: string;
  /** The controller's own trust domain (the federation's): no member may join with it. */
  federationTrustDomain: string;
  /** Called with a newly registered cluster's bundle, so its gateway can Sync at once. */
  trustBundle: (bundle: TrustBundle) => void;
}

/**
 * Join: admits a cluster with a one-time token. The request is checked completely before the
 * token is consumed, so a malformed request, a trust domain that is taken or a token created for
 * another cluster does not burn it; once consumed, it is gone whatever happens next.
 *
 * Trust domains are reserved: the federation's own (its CA signs admin and controller identities)
 * and each member's. A joiner that brought a bundle for one of them would otherwise have its CA
 * trusted for identities that are not its own.
 */
export class JoinService {
  constructor(private readonly options: JoinServiceOptions) {}

  handle = (call: ServerUnaryCall<JoinRequest, JoinResponse>, callback: sendUnaryData<JoinResponse>): void => {
    this.join(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => {
        this.options.log.warn({ cluster: call.request.cluster?.name, peer: call.getPeer(), err: errorMessage(error) }, 'join refused');
        callback(toGrpcError(error));
      },
    );
  };

  private async join(request: JoinRequest): Promise<JoinResponse> {
    const { store, log } = this.options;
    const token = parseJoinToken(request.token);
    const info = clusterFromProto(request.cluster, 'JoinRequest.cluster');
    let bundle: TrustBundle;
    try {
      bundle = TrustBundle.fromSpiffeJson(info.trustDomain, request.bundleJson);
    } catch (error) {
      throw new FedgateError(ErrorCodes.BUNDLE_INVALID, `JoinRequest.bundleJson: ${errorMessage(error)}`);
    }
    this.checkTrustDomainFree(info.name, info.trustDomain);
    const now = Date.now();
    const consumed = await store.consumeToken(hashSecret(token.secret), now, info.name);
    switch (consumed.status) {
      case 'unknown':
        throw new FedgateError(ErrorCodes.TOKEN_INVALID, 'join token is not valid (unknown, forged, or created on another federation)');
      case 'expired':
        throw new FedgateError(ErrorCodes.TOKEN_EXPIRED, `join token expired at ${new Date(consumed.record.expiresAt).toISOString()}; create a new one with "fedgate token create"`);
      case 'used':
        throw new FedgateError(ErrorCodes.TOKEN_USED, `join token was already used at ${new Date(consumed.record.usedAt ?? 0).toISOString()}; tokens are single-use`);
      case 'wrong-cluster':
        throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `join token was created for cluster "${consumed.record.cluster}", not "${info.name}"; the token is still valid for "${consumed.record.cluster}"`);
      case 'ok':
        break;
    }
    const record: ClusterRecord = { ...info, state: 'active', stateReason: 'joined', stateChangedBy: `token of ${consumed.record.createdBy}`, stateChangedAt: now, joinedAt: now };
    const revision = await store.createCluster(record, { trustDomain: info.trustDomain, sequence: bundle.sequence, spiffeJson: JSON.stringify(bundle.toSpiffeJson()) });
    this.options.trustBundle(bundle);
    await store.appendAudit({ at: now, actor: consumed.record.createdBy, action: 'join', target: info.name, detail: `trust domain ${info.trustDomain}, revision ${revision}` }).catch(() => undefined);
    log.info({ cluster: info.name, trustDomain: info.trustDomain, revision }, 'cluster joined');
    const bundles = [...this.options.catalog.bundles.values()].filter((b) => b.trustDomain !== info.trustDomain);
    return {
      federation: this.options.federation,
      apiAddress: this.options.apiAddress(),
      controllerSpiffeId: this.options.controllerSpiffeId,
      bundles: [...bundles.map(bundleToProto), { trustDomain: info.trustDomain, sequence: bundle.sequence, spiffeJson: JSON.stringify(bundle.toSpiffeJson()) }],
      controllerCaPem: this.options.controllerCaPem,
    };
  }

  /**
   * Refuses a trust domain that is already in use before the token is touched. The store checks
   * member trust domains again, atomically, when it creates the cluster; this check names no
   * owner, since the caller is not authenticated yet.
   */
  private checkTrustDomainFree(cluster: string, trustDomain: string): void {
    const { federationTrustDomain, catalog } = this.options;
    if (trustDomain === federationTrustDomain) {
      throw new FedgateError(
        ErrorCodes.TRUST_DOMAIN_RESERVED,
        `trust domain "${trustDomain}" is the federation's own (it signs controller and admin identities); a cluster needs a trust domain of its own, e.g. "fedgate ca init --trust-domain <cluster>.${trustDomain}"`,
      );
    }
    for (const member of catalog.clusters.values()) {
      // The same cluster joining again gets the store's own answer (it already exists).
      if (member.trustDomain === trustDomain && member.name !== cluster) {
        throw new FedgateError(ErrorCodes.TRUST_DOMAIN_RESERVED, `trust domain "${trustDomain}" already belongs to a member of this federation; each cluster needs a trust domain of its own`);
      }
    }
  }
}
