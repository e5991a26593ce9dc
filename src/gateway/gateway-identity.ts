import { ErrorCodes, errorMessage, PkiError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import type { BundleRecord } from '../model/catalog.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { PeerVerifier } from '../pki/peer-verifier.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { RotatingSvid } from '../pki/rotation.js';
import { issueSvid } from '../pki/svid.js';
import { TrustBundle } from '../pki/trust-bundle.js';
import { TrustStore } from '../pki/trust-store.js';

/**
 * A gateway's identity and trust: its cluster's CA (which never leaves the cluster) issues the
 * gateway SVID, renewed at half-life; the trust store holds one bundle per member trust domain,
 * replaced from the catalog, with this cluster's own bundle always read from its CA directory.
 */
export class GatewayIdentity {
  readonly spiffeId: SpiffeId;
  readonly svid: RotatingSvid;
  readonly trust = new TrustStore();
  readonly verifier: PeerVerifier;
  private ownBundleValue: TrustBundle;

  private constructor(
    readonly cluster: ClusterConfig,
    private readonly pki: PkiDirectory,
    certificateTtlMs: number,
    private readonly log: Logger,
  ) {
    this.spiffeId = SpiffeId.gateway(cluster.spec.trustDomain, cluster.metadata.name);
    this.ownBundleValue = pki.bundle();
    this.trust.anchor(this.ownBundleValue);
    this.verifier = new PeerVerifier(this.trust);
    this.svid = new RotatingSvid(() => issueSvid(this.pki.ca(), this.spiffeId, { ttlMs: certificateTtlMs }), { log });
  }

  static load(cluster: ClusterConfig, certificateTtlMs: number, log: Logger): GatewayIdentity {
    const pki = new PkiDirectory(cluster.pkiDir, { trustDomain: cluster.spec.trustDomain });
    if (!pki.exists()) {
      throw new PkiError(
        ErrorCodes.CA_NOT_FOUND,
        `cluster ${cluster.metadata.name} has no CA in ${cluster.pkiDir}; create it with "fedgate ca init --trust-domain ${cluster.spec.trustDomain} --out ${cluster.pkiDir}" or mount the cluster CA secret there`,
      );
    }
    const ca = pki.ca();
    if (ca.trustDomain !== cluster.spec.trustDomain) {
      throw new PkiError(ErrorCodes.CA_INVALID, `the CA in ${cluster.pkiDir} is for trust domain ${ca.trustDomain}, but cluster ${cluster.metadata.name} is ${cluster.spec.trustDomain}`);
    }
    return new GatewayIdentity(cluster, pki, certificateTtlMs, log);
  }

  get ownBundle(): TrustBundle {
    return this.ownBundleValue;
  }

  /** Re-reads the own bundle (a CA rotation changes it); true when it is newer than before. */
  refreshOwnBundle(): boolean {
    try {
      const bundle = this.pki.bundle();
      if (bundle.sequence <= this.ownBundleValue.sequence) return false;
      this.ownBundleValue = bundle;
      this.trust.anchor(bundle);
      this.log.info({ sequence: bundle.sequence }, 'own trust bundle changed');
      return true;
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'own trust bundle unreadable; keeping the last good one');
      return false;
    }
  }

  /**
   * Replaces peer bundles from the catalog. Only the trust domain of a member cluster can bring a
   * bundle, and never the controller's (a catalog that carried one would let its CA vouch for
   * peers). A bundle that does not parse keeps its last good version; trust domains absent from
   * the catalog (removed clusters) are dropped.
   */
  applyCatalogBundles(records: Iterable<BundleRecord>, memberTrustDomains: ReadonlySet<string>, controllerTrustDomain: string | undefined): string[] {
    const problems: string[] = [];
    const bundles: TrustBundle[] = [];
    for (const record of records) {
      if (record.trustDomain === this.ownBundleValue.trustDomain) continue;
      if (record.trustDomain === controllerTrustDomain || !memberTrustDomains.has(record.trustDomain)) {
        problems.push(`bundle of ${record.trustDomain}: ignored, ${record.trustDomain === controllerTrustDomain ? "it is the controller's trust domain" : 'no member cluster has this trust domain'}`);
        continue;
      }
      try {
        bundles.push(TrustBundle.fromSpiffeJson(record.trustDomain, record.spiffeJson).withSequence(record.sequence));
      } catch (error) {
        problems.push(`bundle of ${record.trustDomain}: ${errorMessage(error)}`);
        const held = this.trust.get(record.trustDomain);
        if (held) bundles.push(held);
      }
    }
    this.trust.replaceAll(bundles);
    return problems;
  }

  /**
   * Checks that every bundle of a candidate catalog parses; returns the first problem. Bundles
   * carried over unchanged from `previous` were checked when they arrived and are skipped:
   * parsing certificates on every delta would cost far more than the delta itself.
   */
  static checkBundles(candidate: ReadonlyMap<string, BundleRecord>, previous: ReadonlyMap<string, BundleRecord> = new Map()): string | undefined {
    for (const [trustDomain, record] of candidate) {
      if (previous.get(trustDomain) === record) continue;
      try {
        TrustBundle.fromSpiffeJson(record.trustDomain, record.spiffeJson);
      } catch (error) {
        return `bundle of ${record.trustDomain}: ${errorMessage(error)}`;
      }
    }
    return undefined;
  }

  bundleRecord(): BundleRecord {
    return { trustDomain: this.ownBundleValue.trustDomain, sequence: this.ownBundleValue.sequence, spiffeJson: JSON.stringify(this.ownBundleValue.toSpiffeJson()) };
  }
}
