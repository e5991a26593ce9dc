import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, TrustError } from '../core/errors.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { uriSans } from './pem.js';
import type { TrustStore } from './trust-store.js';

const MAX_CHAIN_DEPTH = 8;
const CACHE_LIMIT = 4096;

/**
 * Checks a peer after Node's TLS accepted its chain. Node (OpenSSL) validated the chain against
 * the union of all trusted roots; that is not enough, because CA A could then vouch for an
 * identity of trust domain B. Here the SVID's shape is checked and the chain must reach an
 * authority of the bundle of the very trust domain its SPIFFE ID names. Signatures are verified by
 * node:crypto (OpenSSL), never by node-forge.
 */
export class PeerVerifier {
  private readonly cache = new Map<string, { version: number; id: SpiffeId; notAfter: number }>();

  constructor(
    private readonly trust: TrustStore,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Verifies a leaf and the intermediates the peer sent; returns its SPIFFE ID or throws TrustError. */
  verify(leaf: X509Certificate, intermediates: readonly X509Certificate[] = []): SpiffeId {
    const now = this.clock.now();
    const notAfter = Date.parse(leaf.validTo);
    if (now >= notAfter) throw new TrustError(ErrorCodes.PEER_SVID_INVALID, `peer certificate expired at ${leaf.validTo}`);
    if (now < Date.parse(leaf.validFrom)) throw new TrustError(ErrorCodes.PEER_SVID_INVALID, `peer certificate is not valid before ${leaf.validFrom}`);
    if (leaf.ca) throw new TrustError(ErrorCodes.PEER_SVID_INVALID, 'peer certificate is a CA certificate (basicConstraints CA=true); an X.509-SVID leaf must not be');
    const uris = uriSans(leaf);
    if (uris.length !== 1) {
      throw new TrustError(ErrorCodes.PEER_SVID_INVALID, `peer certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one`);
    }
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(uris[0] as string);
    } catch (error) {
      throw new TrustError(ErrorCodes.PEER_SVID_INVALID, `peer SPIFFE ID is invalid: ${(error as Error).message}`);
    }
    if (id.path === '') throw new TrustError(ErrorCodes.PEER_SVID_INVALID, `peer SPIFFE ID ${id.toString()} names a trust domain, not a workload`);
    const bundle = this.trust.get(id.trustDomain);
    if (!bundle) throw new TrustError(ErrorCodes.PEER_UNTRUSTED, `peer ${id.toString()}: no trust bundle for trust domain "${id.trustDomain}"`);

    let current = leaf;
    for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
      if (bundle.authorities.some((authority) => issuedBy(current, authority))) return id;
      const parent = intermediates.find((candidate) => candidate.ca && candidate !== current && issuedBy(current, candidate));
      if (!parent) break;
      current = parent;
    }
    throw new TrustError(
      ErrorCodes.PEER_TRUST_DOMAIN_MISMATCH,
      `peer claims ${id.toString()} but its certificate does not chain to an authority of trust domain "${id.trustDomain}"`,
    );
  }

  /** As `verify`, for a socket after the handshake; results are cached per certificate and trust version. */
  verifySocket(socket: TLSSocket): SpiffeId {
    const peer = socket.getPeerCertificate(true);
    if (!peer || !peer.raw) throw new TrustError(ErrorCodes.PEER_NO_CERTIFICATE, 'peer presented no certificate');
    return this.verifyPeerCertificate(peer);
  }

  /** For a detailed PeerCertificate (as `checkServerIdentity` and grpc-js hand it over). */
  verifyPeerCertificate(peer: PeerCertificate): SpiffeId {
    if (!peer.raw) throw new TrustError(ErrorCodes.PEER_NO_CERTIFICATE, 'peer presented no certificate');
    const key = createHash('sha256').update(peer.raw).digest('base64');
    const cached = this.cache.get(key);
    const now = this.clock.now();
    if (cached && cached.version === this.trust.version && now < cached.notAfter) return cached.id;
    const leaf = new X509Certificate(peer.raw);
    const intermediates: X509Certificate[] = [];
    const seen = new Set<Buffer>([peer.raw]);
    let next = (peer as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    while (next?.raw && !seen.has(next.raw) && intermediates.length < MAX_CHAIN_DEPTH) {
      seen.add(next.raw);
      intermediates.push(new X509Certificate(next.raw));
      next = (next as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    }
    const id = this.verify(leaf, intermediates);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, { version: this.trust.version, id, notAfter: Date.parse(leaf.validTo) });
    return id;
  }
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}
