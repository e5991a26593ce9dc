import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { Backoff, sleep } from '../core/backoff.js';
import { ErrorCodes, errorMessage, PkiError, type FedgateError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import type { BundleRecord } from '../model/catalog.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { parseCertificates } from '../pki/pem.js';
import { PeerVerifier } from '../pki/peer-verifier.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { RotatingSvid } from '../pki/rotation.js';
import { SignerClient } from '../pki/signer/signer-client.js';
import { issueSvid, type Svid } from '../pki/svid.js';
import { TrustBundle } from '../pki/trust-bundle.js';
import { TrustStore } from '../pki/trust-store.js';

/** How often, at most, the own bundle is asked of the signer between renewals (CA rotation news). */
const SIGNER_BUNDLE_REFRESH_MS = 30_000;

/** Where a gateway keeps what the signer gave it, so a restart while the signer is away still serves. */
const IDENTITY_DIR = 'identity';

/** Readiness as far as the gateway's own certificate goes. */
export interface IdentityHealth {
  ready: boolean;
  reason?: string;
}

/**
 * A gateway's identity and trust. Its SVID comes from one of two sources
 * (`spec.gateway.certificateSource`):
 *
 * - `local`: issued in this process from the cluster CA in `spec.pkiDir`, which the gateway then
 *   holds (the demo, tests, a host that keeps its own CA);
 * - `signer`: the gateway generates its key, and the cluster's signer (`fedgate ca serve`) certifies
 *   it. The gateway holds only its key, its certificate and trust bundles; its own bundle comes from
 *   the signer, starting from the CA certificates in `signer.caFile`. The last certificate and bundle
 *   are kept in `<stateDir>/identity/`, so a restart while the signer is down still serves.
 *
 * Either way the SVID is renewed at half-life, and the trust store holds one bundle per member trust
 * domain, replaced from the catalog, with this cluster's own bundle always from its own source.
 */
export class GatewayIdentity {
  readonly spiffeId: SpiffeId;
  readonly trust = new TrustStore();
  readonly verifier: PeerVerifier;
  private ownBundleValue: TrustBundle;
  private rotating: RotatingSvid | undefined;
  /** Own-bundle sequence last reported by refreshOwnBundle (signer mode). */
  private reportedSequence: number;
  private lastBundleFetch = 0;
  private bundleFetch: Promise<void> | undefined;

  private constructor(
    readonly cluster: ClusterConfig,
    private readonly source: { kind: 'local'; pki: PkiDirectory } | { kind: 'signer'; client: SignerClient },
    private readonly certificateTtlMs: number,
    private readonly log: Logger,
    ownBundle: TrustBundle,
    persisted: Svid | undefined,
  ) {
    this.spiffeId = SpiffeId.gateway(cluster.spec.trustDomain, cluster.metadata.name);
    this.ownBundleValue = ownBundle;
    this.reportedSequence = ownBundle.sequence;
    this.trust.anchor(ownBundle);
    this.verifier = new PeerVerifier(this.trust);
    if (source.kind === 'local') {
      const pki = source.pki;
      this.rotating = new RotatingSvid(() => issueSvid(pki.ca(), this.spiffeId, { ttlMs: certificateTtlMs }), { log });
    } else if (persisted) {
      this.rotating = new RotatingSvid(() => this.requestFromSigner(), { log, initial: persisted });
    }
  }

  static load(cluster: ClusterConfig, certificateTtlMs: number, log: Logger): GatewayIdentity {
    return cluster.spec.gateway.certificateSource === 'signer' ? GatewayIdentity.loadWithSigner(cluster, certificateTtlMs, log) : GatewayIdentity.loadLocal(cluster, certificateTtlMs, log);
  }

  private static loadLocal(cluster: ClusterConfig, certificateTtlMs: number, log: Logger): GatewayIdentity {
    const pki = new PkiDirectory(cluster.pkiDir, { trustDomain: cluster.spec.trustDomain });
    if (!pki.exists()) {
      throw new PkiError(
        ErrorCodes.CA_NOT_FOUND,
        `cluster ${cluster.metadata.name} has no CA in ${cluster.pkiDir}; create it with "fedgate ca init --trust-domain ${cluster.spec.trustDomain} --out ${cluster.pkiDir}", or set spec.gateway.certificateSource: signer to get certificates from "fedgate ca serve"`,
      );
    }
    const ca = pki.ca();
    if (ca.trustDomain !== cluster.spec.trustDomain) {
      throw new PkiError(ErrorCodes.CA_INVALID, `the CA in ${cluster.pkiDir} is for trust domain ${ca.trustDomain}, but cluster ${cluster.metadata.name} is ${cluster.spec.trustDomain}`);
    }
    return new GatewayIdentity(cluster, { kind: 'local', pki }, certificateTtlMs, log, pki.bundle(), undefined);
  }

  private static loadWithSigner(cluster: ClusterConfig, certificateTtlMs: number, log: Logger): GatewayIdentity {
    const settings = cluster.spec.gateway.signer;
    if (!settings) throw new PkiError(ErrorCodes.CONFIG_INVALID, `${cluster.file}: spec.gateway.certificateSource is "signer" but spec.gateway.signer is missing`);
    const client = new SignerClient({ address: settings.address, trustDomain: cluster.spec.trustDomain, caFile: settings.caFile, tokenFile: settings.tokenFile });
    let bundle = client.anchorsBundle();
    const dir = join(cluster.stateDir, IDENTITY_DIR);
    const kept = readKeptBundle(dir, cluster.spec.trustDomain, log);
    if (kept && kept.sequence > bundle.sequence) bundle = kept;
    client.rememberBundle(bundle);
    const spiffeId = SpiffeId.gateway(cluster.spec.trustDomain, cluster.metadata.name);
    const persisted = readKeptSvid(dir, spiffeId, bundle, log);
    return new GatewayIdentity(cluster, { kind: 'signer', client }, certificateTtlMs, log, bundle, persisted);
  }

  get certificateSource(): 'local' | 'signer' {
    return this.source.kind;
  }

  /** The rotating SVID; in signer mode it exists once `start()` obtained one (or one was kept on disk). */
  get svid(): RotatingSvid {
    if (!this.rotating) throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, `gateway ${this.cluster.metadata.name} has no certificate yet: start() obtains it from the signer`);
    return this.rotating;
  }

  /**
   * Obtains the first certificate when there is none (signer mode: retried with back-off while the
   * signer is unreachable; a refusal is final and thrown), then keeps it renewed.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (!this.rotating) {
      const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
      for (;;) {
        try {
          const first = await this.requestFromSigner();
          this.rotating = new RotatingSvid(() => this.requestFromSigner(), { log: this.log, initial: first });
          this.log.info({ spiffeId: this.spiffeId.toString(), serial: first.certificate.serialNumber, notAfter: first.notAfter.toISOString() }, 'certificate obtained from the signer');
          // Nothing was published before the first certificate: what the signer sent is the start.
          this.reportedSequence = this.ownBundleValue.sequence;
          break;
        } catch (error) {
          if ((error as FedgateError).code === ErrorCodes.SIGNER_REFUSED) throw error;
          const delay = backoff.next();
          this.log.warn({ err: errorMessage(error), retryInMs: delay }, 'no certificate from the signer yet; retrying');
          await sleep(delay, signal);
        }
      }
    }
    this.rotating.start();
  }

  stop(): void {
    this.rotating?.stop();
  }

  /** Not ready without a certificate, or with an expired one (peers would refuse every handshake). */
  health(): IdentityHealth {
    if (!this.rotating) return { ready: false, reason: 'no certificate yet (waiting for the signer)' };
    const health = this.rotating.health();
    if (health.state === 'valid') return { ready: true };
    return {
      ready: false,
      reason: `${ErrorCodes.CERTIFICATE_EXPIRED}: the gateway certificate expired at ${health.notAfter.toISOString()} and could not be renewed${health.lastError ? `: ${health.lastError}` : ''}`,
    };
  }

  get ownBundle(): TrustBundle {
    return this.ownBundleValue;
  }

  /**
   * Whether the own bundle changed since the last call (a CA rotation changes it). Local mode re-reads
   * the CA directory; signer mode asks the signer now and then, in the background, and also takes
   * the bundle that comes with each renewal.
   */
  refreshOwnBundle(): boolean {
    if (this.source.kind === 'local') {
      try {
        const bundle = this.source.pki.bundle();
        if (bundle.sequence <= this.ownBundleValue.sequence) return false;
        this.acceptOwnBundle(bundle);
        return true;
      } catch (error) {
        this.log.error({ err: errorMessage(error) }, 'own trust bundle unreadable; keeping the last good one');
        return false;
      }
    }
    const client = this.source.client;
    if (!this.bundleFetch && Date.now() - this.lastBundleFetch >= SIGNER_BUNDLE_REFRESH_MS) {
      this.lastBundleFetch = Date.now();
      this.bundleFetch = client
        .fetchBundle()
        .then((bundle) => this.acceptOwnBundle(bundle))
        .catch((error: unknown) => this.log.warn({ err: errorMessage(error) }, 'cannot fetch the own trust bundle from the signer; keeping the last one'))
        .finally(() => {
          this.bundleFetch = undefined;
        });
    }
    if (this.ownBundleValue.sequence <= this.reportedSequence) return false;
    this.reportedSequence = this.ownBundleValue.sequence;
    return true;
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

  private acceptOwnBundle(bundle: TrustBundle): void {
    if (bundle.sequence <= this.ownBundleValue.sequence) return;
    this.ownBundleValue = bundle;
    this.trust.anchor(bundle);
    this.log.info({ sequence: bundle.sequence, authorities: bundle.authorities.length }, 'own trust bundle changed');
  }

  /** One request to the signer; the answer is kept on disk before it is used. */
  private async requestFromSigner(): Promise<Svid> {
    if (this.source.kind !== 'signer') throw new PkiError(ErrorCodes.CONFIG_INVALID, 'this gateway issues its certificate locally');
    const answer = await this.source.client.requestSvid(this.spiffeId, { ttlMs: this.certificateTtlMs, current: this.rotating?.current });
    this.acceptOwnBundle(answer.bundle);
    try {
      keep(join(this.cluster.stateDir, IDENTITY_DIR), answer.svid, this.ownBundleValue);
    } catch (error) {
      // The certificate is good; only a restart while the signer is down would miss it.
      this.log.warn({ err: errorMessage(error), stateDir: this.cluster.stateDir }, 'cannot keep the gateway certificate on disk');
    }
    return answer.svid;
  }
}

function keep(dir: string, svid: Svid, bundle: TrustBundle): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomicSync(join(dir, 'tls.key'), svid.keyPem, { mode: 0o600 });
  writeFileAtomicSync(join(dir, 'tls.crt'), svid.chainPem, { mode: 0o644 });
  writeFileAtomicSync(join(dir, 'bundle.json'), `${JSON.stringify(bundle.toSpiffeJson(), null, 2)}\n`, { mode: 0o644 });
}

function readKeptBundle(dir: string, trustDomain: string, log: Logger): TrustBundle | undefined {
  const file = join(dir, 'bundle.json');
  if (!existsSync(file)) return undefined;
  try {
    return TrustBundle.fromSpiffeJson(trustDomain, readFileSync(file, 'utf8'));
  } catch (error) {
    log.warn({ err: errorMessage(error), file }, 'kept trust bundle unreadable; ignoring it');
    return undefined;
  }
}

/**
 * The certificate kept by an earlier run, when it is usable: this gateway's identity, its key,
 * and a chain to the own bundle. An expired one is still returned: the gateway then starts unready
 * and renews at once (renewal by mutual TLS needs a valid one, a token does not).
 */
function readKeptSvid(dir: string, spiffeId: SpiffeId, bundle: TrustBundle, log: Logger): Svid | undefined {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    const chain = parseCertificates(readFileSync(certFile, 'utf8'), certFile);
    const [leaf, ...intermediates] = chain as [X509Certificate, ...X509Certificate[]];
    const keyPem = readFileSync(keyFile, 'utf8');
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`${keyFile} does not belong to ${certFile}`);
    // Checked at the certificate's own start, so an expired one is still recognised as ours.
    const id = new PeerVerifier(new TrustStore([bundle]), { now: () => Date.parse(leaf.validFrom) }).verify(leaf, intermediates);
    if (!id.equals(spiffeId)) throw new Error(`${certFile} is for ${id.toString()}, not ${spiffeId.toString()}`);
    return {
      spiffeId,
      keyPem,
      certificatePem: leaf.toString(),
      chainPem: chain.map((c) => c.toString()).join(''),
      certificate: leaf,
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
    };
  } catch (error) {
    log.warn({ err: errorMessage(error), dir }, 'kept gateway certificate unusable; asking the signer for a new one');
    return undefined;
  }
}
