import type { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';

/**
 * What a process's identity shows of its certificates: its own SVID (renewed by itself) and the
 * trust bundles it verifies peers against. Structural, so that this folder needs nothing of pki/:
 * a gateway's `GatewayIdentity` is one.
 */
export interface CertificateSource {
  svid: { readonly current: { readonly spiffeId: { readonly trustDomain: string }; readonly notAfter: Date }; readonly renewAt: number };
  trust: { all(): ReadonlyArray<{ readonly trustDomain: string; readonly authorities: readonly X509Certificate[] }> };
}

/**
 * Expiry of the SVID and of every trust bundle, read from the identity when scraped (so a rotation
 * or a new bundle shows at the next scrape, without hooks into the rotation code). A bundle is
 * usable until its last authority expires: while a CA is rotated the old root expiring is normal,
 * so the bundle's value is the latest `notAfter` of its authorities.
 */
export function registerCertificateMetrics(registry: Registry, source: CertificateSource): void {
  new Gauge({
    name: 'fedgate_certificate_expiry_timestamp_seconds',
    help: 'When a certificate stops being valid (unix seconds): kind="svid" this process\'s own SVID, kind="bundle" the last authority of the trust bundle of trust_domain',
    labelNames: ['kind', 'trust_domain'],
    registers: [registry],
    collect() {
      this.reset();
      const svid = source.svid.current;
      this.set({ kind: 'svid', trust_domain: svid.spiffeId.trustDomain }, svid.notAfter.getTime() / 1000);
      for (const bundle of source.trust.all()) {
        const latest = Math.max(...bundle.authorities.map((authority) => Date.parse(authority.validTo)));
        if (Number.isFinite(latest)) this.set({ kind: 'bundle', trust_domain: bundle.trustDomain }, latest / 1000);
      }
    },
  });
  new Gauge({
    name: 'fedgate_certificate_renewal_timestamp_seconds',
    help: 'When this process renews its own SVID (unix seconds); in the past means renewal is failing',
    labelNames: ['kind', 'trust_domain'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ kind: 'svid', trust_domain: source.svid.current.spiffeId.trustDomain }, source.svid.renewAt / 1000);
    },
  });
}
