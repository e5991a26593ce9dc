import { sign, type X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { parseHostPort } from '../../config/shape.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { ErrorCodes, errorMessage, FedgateError, PkiError } from '../../core/errors.js';
import type { SpiffeId } from '../../model/spiffe-id.js';
import { generateKey, privateKeyToPem, spkiDer, type KeyAlgorithm } from '../keys.js';
import { parseCertificates } from '../pem.js';
import { PeerVerifier } from '../peer-verifier.js';
import type { Svid } from '../svid.js';
import { checkServer, expectId, MIN_TLS_VERSION } from '../tls-options.js';
import { TrustBundle, type SpiffeBundleDocument } from '../trust-bundle.js';
import { TrustStore } from '../trust-store.js';
import { BUNDLE_PATH, EXPORTER_BYTES, EXPORTER_CONTEXT, EXPORTER_LABEL, proofDigest, proofMessage, SIGN_PATH, signerSpiffeId, type SignRequest } from './signer-protocol.js';

export interface SignerClientOptions {
  /** host:port of the signer. */
  address: string;
  /** This cluster's trust domain: the signer must be its `spiffe://<td>/fedgate/signer`. */
  trustDomain: string;
  /**
   * PEM file with this cluster's CA certificate(s): what the signer's certificate is checked
   * against before any bundle has been obtained from it. Re-read on every request.
   */
  caFile: string;
  /**
   * Bearer credential, re-read on every request: a projected ServiceAccount token (kubelet
   * rotates it) or a one-time bootstrap token. Optional when renewing with a valid certificate.
   */
  tokenFile?: string;
  timeoutMs?: number;
  clock?: Clock;
}

export interface SignerAnswer {
  svid: Svid;
  /** The trust domain's bundle as the signer holds it. */
  bundle: TrustBundle;
}

export interface RequestSvidOptions {
  ttlMs: number;
  keyAlgorithm?: KeyAlgorithm;
  /** The SVID held now: presented as client certificate while it is valid, so the signer may renew on it. */
  current?: Svid;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * A gateway's side of the signer protocol (signer-protocol.ts). The private key is generated here
 * and never leaves this process; the signer is verified by Node's TLS against the cluster's own
 * anchors, then by its exact SPIFFE ID; what it returns is checked before it is used.
 *
 * Errors: `FEDGATE_ERR_SIGNER_REFUSED` when the signer said no (credentials, identity: retrying
 * the same request will not help), `FEDGATE_ERR_SIGNER_UNAVAILABLE` for everything worth a retry.
 */
export class SignerClient {
  private bundle: TrustBundle | undefined;
  private readonly clock: Clock;
  private readonly host: string;
  private readonly port: number;

  constructor(private readonly options: SignerClientOptions) {
    const address = parseHostPort(options.address);
    if (!address) throw new FedgateError(ErrorCodes.CONFIG_INVALID, `signer address "${options.address}" is not host:port`);
    this.host = address.host;
    this.port = address.port;
    this.clock = options.clock ?? systemClock;
  }

  get address(): string {
    return this.options.address;
  }

  /** The anchors from caFile as a bundle (sequence derived from the newest anchor, as PkiDirectory does). */
  anchorsBundle(): TrustBundle {
    let anchors: X509Certificate[];
    try {
      anchors = parseCertificates(readFileSync(this.options.caFile, 'utf8'), this.options.caFile);
    } catch (error) {
      throw new PkiError(ErrorCodes.CA_NOT_FOUND, `cannot read this cluster's CA certificates from ${this.options.caFile}: ${errorMessage(error)}`);
    }
    return new TrustBundle(this.options.trustDomain, anchors, Math.max(...anchors.map((a) => Math.floor(Date.parse(a.validFrom) / 1000))));
  }

  /** Remembers a bundle obtained earlier (persisted), so its anchors verify the signer too. */
  rememberBundle(bundle: TrustBundle): void {
    if (!this.bundle || bundle.sequence > this.bundle.sequence) this.bundle = bundle;
  }

  async requestSvid(spiffeId: SpiffeId, options: RequestSvidOptions): Promise<SignerAnswer> {
    const presented = options.current && this.clock.now() < options.current.notAfter.getTime() ? options.current : undefined;
    const socket = await this.connect(presented);
    try {
      const { privateKey, publicKey } = generateKey(options.keyAlgorithm ?? 'ec-p256');
      const publicKeyDer = spkiDer(publicKey);
      const binding = socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, EXPORTER_CONTEXT);
      const proof = sign(proofDigest(privateKey), proofMessage(spiffeId.toString(), publicKeyDer, binding), privateKey);
      const body: SignRequest = { spiffeId: spiffeId.toString(), publicKey: publicKeyDer.toString('base64'), ttlSeconds: Math.max(1, Math.ceil(options.ttlMs / 1000)), proof: proof.toString('base64') };
      const token = this.readToken();
      const answer = (await this.exchange(socket, 'POST', SIGN_PATH, JSON.stringify(body), token)) as { certificateChain?: unknown; bundle?: unknown };
      const bundle = this.parseBundle(answer.bundle);
      const svid = this.checkIssued(spiffeId, answer.certificateChain, publicKeyDer, bundle);
      this.rememberBundle(bundle);
      return { svid: { ...svid, keyPem: privateKeyToPem(privateKey) }, bundle };
    } finally {
      socket.destroy();
    }
  }

  async fetchBundle(): Promise<TrustBundle> {
    const socket = await this.connect(undefined);
    try {
      const bundle = this.parseBundle(await this.exchange(socket, 'GET', BUNDLE_PATH, undefined, undefined));
      this.rememberBundle(bundle);
      return bundle;
    } finally {
      socket.destroy();
    }
  }

  private trust(): TrustStore {
    const anchors = this.anchorsBundle();
    const held = this.bundle;
    const authorities = held ? [...anchors.authorities, ...held.authorities] : [...anchors.authorities];
    return new TrustStore([new TrustBundle(this.options.trustDomain, authorities, Math.max(anchors.sequence, held?.sequence ?? 0))]);
  }

  private readToken(): string | undefined {
    const file = this.options.tokenFile;
    if (!file || !existsSync(file)) return undefined;
    try {
      const token = readFileSync(file, 'utf8').trim();
      return token === '' ? undefined : token;
    } catch (error) {
      throw new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `cannot read the signer token ${file}: ${errorMessage(error)}`);
    }
  }

  private connect(client: Svid | undefined): Promise<TLSSocket> {
    const trust = this.trust();
    const verifier = new PeerVerifier(trust, this.clock);
    const expected = signerSpiffeId(this.options.trustDomain);
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: this.host,
        port: this.port,
        servername: isIP(this.host) === 0 ? this.host : undefined,
        ca: trust.roots(),
        key: client?.keyPem,
        cert: client?.chainPem,
        minVersion: MIN_TLS_VERSION,
        rejectUnauthorized: true,
        checkServerIdentity: (_host, certificate) => checkServer(verifier, certificate, expectId(expected)),
      });
      const fail = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address}: ${errorMessage(error)}`));
      };
      const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve(socket);
      });
    });
  }

  private exchange(socket: TLSSocket, method: string, path: string, body: string | undefined, token: string | undefined): Promise<unknown> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { host: this.options.address, accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      if (token) headers.authorization = `Bearer ${token}`;
      const req = request({ createConnection: () => socket, method, path, headers }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', (error) => reject(new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address}: ${errorMessage(error)}`)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          if (status === 200 && parsed !== undefined) {
            resolve(parsed);
            return;
          }
          const detail = parsed as { error?: unknown; code?: unknown } | undefined;
          const message = typeof detail?.error === 'string' ? detail.error : `HTTP ${status}`;
          const code = typeof detail?.code === 'string' ? ` (${detail.code})` : '';
          const refused = status >= 400 && status < 500;
          const hint = refused && status === 401 && !token && this.options.tokenFile ? `; no token in ${this.options.tokenFile}` : '';
          reject(new PkiError(refused ? ErrorCodes.SIGNER_REFUSED : ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address} ${refused ? 'refused' : 'failed'}: ${message}${code}${hint}`));
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (error) => reject(new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address}: ${errorMessage(error)}`)));
      req.end(body);
    });
  }

  private parseBundle(document: unknown): TrustBundle {
    try {
      return TrustBundle.fromSpiffeJson(this.options.trustDomain, document as SpiffeBundleDocument);
    } catch (error) {
      throw new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address} sent an unusable bundle: ${errorMessage(error)}`);
    }
  }

  /**
   * What came back must be a certificate for our key and the identity asked for, chaining to an
   * authority of our trust domain (checked by node:crypto, as for any peer).
   */
  private checkIssued(spiffeId: SpiffeId, chainPem: unknown, publicKeyDer: Buffer, bundle: TrustBundle): Omit<Svid, 'keyPem'> {
    const bad = (reason: string): PkiError => new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `signer ${this.options.address} sent an unusable certificate: ${reason}`);
    if (typeof chainPem !== 'string') throw bad('certificateChain missing');
    let chain: X509Certificate[];
    try {
      chain = parseCertificates(chainPem, 'certificateChain');
    } catch (error) {
      throw bad(errorMessage(error));
    }
    const [leaf, ...intermediates] = chain as [X509Certificate, ...X509Certificate[]];
    if (!spkiDer(leaf.publicKey).equals(publicKeyDer)) throw bad('it is not for the key this gateway generated');
    // The anchors already trusted plus the bundle that came with it over the verified connection.
    const held = this.trust().require(this.options.trustDomain);
    const trust = new TrustStore([new TrustBundle(this.options.trustDomain, [...held.authorities, ...bundle.authorities], Math.max(held.sequence, bundle.sequence))]);
    let id: SpiffeId;
    try {
      id = new PeerVerifier(trust, this.clock).verify(leaf, intermediates);
    } catch (error) {
      throw bad(errorMessage(error));
    }
    if (!id.equals(spiffeId)) throw bad(`it names ${id.toString()}, not ${spiffeId.toString()}`);
    return {
      spiffeId,
      certificatePem: leaf.toString(),
      chainPem: chain.map((c) => c.toString()).join(''),
      certificate: leaf,
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
    };
  }
}
