import { verify as verifySignature } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseHostPort } from '../../config/shape.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { ErrorCodes, errorMessage, FedgateError, TokenError, TrustError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { CertificateAuthority } from '../certificate-authority.js';
import { spkiDer } from '../keys.js';
import { PeerVerifier } from '../peer-verifier.js';
import { PkiDirectory } from '../pki-directory.js';
import { bindListener, RotatingSvid } from '../rotation.js';
import { issueSvid } from '../svid.js';
import { MIN_TLS_VERSION, serverSecureContext } from '../tls-options.js';
import type { TrustBundle } from '../trust-bundle.js';
import { TrustStore } from '../trust-store.js';
import { BootstrapTokens } from './bootstrap-tokens.js';
import { BUNDLE_PATH, EXPORTER_BYTES, EXPORTER_CONTEXT, EXPORTER_LABEL, MAX_REQUEST_BYTES, parseSignRequest, proofDigest, proofMessage, SIGN_PATH, signerSpiffeId, type ErrorResponse, type SignResponse } from './signer-protocol.js';
import type { TokenReviewer } from './token-review.js';

/** How a caller may prove it is the gateway. Each method is off unless configured. */
export interface SignerAuthentication {
  /** Projected ServiceAccount tokens bound to `audience`, checked with the TokenReview API. */
  kubernetes?: {
    reviewer: TokenReviewer;
    audience: string;
    /** Accounts allowed to obtain the gateway certificate, as `namespace:name`. */
    serviceAccounts: readonly string[];
  };
  /** One-time tokens for plain hosts (`fedgate ca signer-token create`). */
  bootstrapTokens?: BootstrapTokens;
  /**
   * Renewal by mutual TLS with the gateway's current, still valid certificate. Convenient on
   * plain hosts; off in Kubernetes, so that deleting the ServiceAccount or its pods really cuts a
   * compromised gateway off at its next renewal.
   */
  renewal: boolean;
}

export type SignerMethod = 'kubernetes' | 'bootstrap-token' | 'renewal' | 'none';

export interface SignerOutcome {
  result: 'issued' | 'refused' | 'failed';
  method: SignerMethod;
}

export interface SvidSignerOptions {
  /** The cluster CA, in Kubernetes secret layout (the only place its key is read). */
  pkiDir: string;
  /** The cluster whose gateway this signer certifies: it issues `spiffe://<td>/fedgate/gateway/<cluster>` only. */
  cluster: string;
  /** host:port of the HTTPS listener. */
  listen: string;
  /** Longest certificate lifetime handed out, whatever is asked for. */
  maxTtlMs: number;
  auth: SignerAuthentication;
  log: Logger;
  clock?: Clock;
  onOutcome?: (outcome: SignerOutcome) => void;
  /** How often the CA directory is re-read (CA rotation, a CA secret renewed in place). */
  refreshIntervalMs?: number;
  /** Lifetime of the signer's own serving certificate. */
  servingTtlMs?: number;
}

/** An answer to the caller: status, stable code, and a message that reveals no secret. */
class SignerRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const DEFAULT_SERVING_TTL_MS = 24 * 3_600_000;
const DEFAULT_REFRESH_MS = 30_000;

/**
 * The cluster's certificate signer (`fedgate ca serve`): the only process that reads the cluster
 * CA key. It certifies public keys for exactly one identity, its cluster's gateway, to a caller
 * that proves it is that gateway, with a short lifetime, and logs every issuance and refusal
 * (never a token or key). It serves HTTPS with its own SVID from the same CA, so gateways verify
 * it with the cluster's trust bundle, and re-reads the CA directory to follow a CA rotation.
 */
export class SvidSigner {
  readonly gatewayId: SpiffeId;
  private readonly pki: PkiDirectory;
  private readonly clock: Clock;
  private ca: CertificateAuthority;
  private bundle: TrustBundle;
  private readonly trust: TrustStore;
  private readonly verifier: PeerVerifier;
  private readonly serving: RotatingSvid;
  private server: Server | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private unbind: (() => void) | undefined;
  private problem: string | undefined;

  constructor(private readonly options: SvidSignerOptions) {
    this.clock = options.clock ?? systemClock;
    this.pki = new PkiDirectory(options.pkiDir, { clock: this.clock });
    this.ca = this.pki.ca();
    this.bundle = this.pki.bundle();
    this.gatewayId = SpiffeId.gateway(this.ca.trustDomain, options.cluster);
    this.trust = new TrustStore([this.bundle]);
    this.verifier = new PeerVerifier(this.trust, this.clock);
    const servingId = signerSpiffeId(this.ca.trustDomain);
    this.serving = new RotatingSvid(() => issueSvid(this.ca, servingId, { ttlMs: options.servingTtlMs ?? DEFAULT_SERVING_TTL_MS }), { clock: this.clock, log: options.log });
    if (!options.auth.kubernetes && !options.auth.bootstrapTokens && !options.auth.renewal) {
      throw new FedgateError(ErrorCodes.CONFIG_INVALID, 'the signer accepts no credential: enable Kubernetes ServiceAccount tokens, bootstrap tokens or renewal');
    }
  }

  get trustDomain(): string {
    return this.ca.trustDomain;
  }

  /** When the signing CA expires: worth an alert well before it happens. */
  get caNotAfter(): Date {
    return this.ca.notAfter;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (!this.server?.listening) return { ready: false, reason: 'not listening' };
    if (this.clock.now() >= this.ca.notAfter.getTime()) return { ready: false, reason: `${ErrorCodes.CA_EXPIRED}: the cluster CA expired at ${this.ca.notAfter.toISOString()}` };
    if (this.problem) return { ready: false, reason: this.problem };
    return { ready: true };
  }

  describe(): Record<string, unknown> {
    return {
      trustDomain: this.ca.trustDomain,
      issues: this.gatewayId.toString(),
      ca: { serial: this.ca.serialNumber, notAfter: this.ca.notAfter.toISOString() },
      bundleSequence: this.bundle.sequence,
      maxTtlSeconds: Math.floor(this.options.maxTtlMs / 1000),
      authentication: {
        kubernetes: this.options.auth.kubernetes ? { audience: this.options.auth.kubernetes.audience, serviceAccounts: this.options.auth.kubernetes.serviceAccounts } : undefined,
        bootstrapTokens: this.options.auth.bootstrapTokens ? this.options.auth.bootstrapTokens.dir : undefined,
        renewal: this.options.auth.renewal,
      },
      serving: { serial: this.serving.current.certificate.serialNumber, notAfter: this.serving.current.notAfter.toISOString() },
    };
  }

  async start(): Promise<void> {
    const address = parseHostPort(this.options.listen);
    if (!address) throw new FedgateError(ErrorCodes.CONFIG_INVALID, `listen address "${this.options.listen}" is not host:port`);
    const server = createServer(
      {
        ...serverSecureContext(this.serving.current, this.trust),
        // A client certificate is asked for (renewal) but not required: token holders have none.
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: MIN_TLS_VERSION,
        headersTimeout: 10_000,
        requestTimeout: 30_000,
        maxHeaderSize: 16 * 1024,
      },
      (req, res) => void this.handle(req, res),
    );
    server.keepAliveTimeout = 5_000;
    this.unbind = bindListener(server, this.serving, this.trust);
    this.serving.start();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.refreshTimer = setInterval(() => this.refresh(), this.options.refreshIntervalMs ?? DEFAULT_REFRESH_MS);
    this.refreshTimer.unref();
    this.options.log.info({ listen: this.options.listen, port: this.port, issues: this.gatewayId.toString(), ca: this.ca.serialNumber, maxTtlMs: this.options.maxTtlMs }, 'signer listening');
  }

  async stop(): Promise<void> {
    clearInterval(this.refreshTimer);
    this.serving.stop();
    this.unbind?.();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Re-reads the CA directory. A new signing CA (rotation activated, secret renewed) gets a new
   * serving certificate at once; a new bundle (rotation prepared or retired) is served from now on.
   * An unreadable directory keeps the last good CA and makes the signer unready.
   */
  refresh(): void {
    try {
      const ca = this.pki.ca();
      const bundle = this.pki.bundle();
      this.problem = undefined;
      if (bundle.sequence !== this.bundle.sequence || !bundle.sameAuthorities(this.bundle)) {
        this.bundle = bundle;
        this.trust.replaceAll([bundle]);
        this.options.log.info({ sequence: bundle.sequence, authorities: bundle.authorities.length }, 'trust bundle changed');
      }
      if (ca.serialNumber !== this.ca.serialNumber) {
        this.ca = ca;
        this.serving.rotate();
        this.options.log.info({ ca: ca.serialNumber }, 'signing CA changed; serving certificate re-issued');
      } else {
        this.ca = ca;
      }
    } catch (error) {
      this.problem = `CA directory ${this.options.pkiDir} unreadable: ${errorMessage(error)}`;
      this.options.log.error({ err: errorMessage(error), pkiDir: this.options.pkiDir }, 'cluster CA unreadable; keeping the last good one');
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    let method: SignerMethod = 'none';
    try {
      if (req.method === 'GET' && path === BUNDLE_PATH) {
        sendJson(res, 200, this.bundle.toSpiffeJson());
        return;
      }
      if (path !== SIGN_PATH) throw new SignerRefusal(404, ErrorCodes.SIGNER_REFUSED, `no such endpoint: ${req.method} ${path}`);
      if (req.method !== 'POST') throw new SignerRefusal(405, ErrorCodes.SIGNER_REFUSED, `${SIGN_PATH} takes POST`);
      const body = await readBody(req);
      let parsed;
      try {
        parsed = parseSignRequest(JSON.parse(body.toString('utf8')) as unknown);
      } catch (error) {
        throw new SignerRefusal(400, ErrorCodes.SIGNER_REFUSED, error instanceof SyntaxError ? 'request body is not JSON' : errorMessage(error));
      }
      const socket = req.socket as TLSSocket;
      // Checks without side effects first: a bad request must not spend a one-time token.
      if (!parsed.spiffeId.equals(this.gatewayId)) {
        throw new SignerRefusal(403, ErrorCodes.PERMISSION_DENIED, `this signer issues ${this.gatewayId.toString()} only; ${parsed.spiffeId.toString()} was asked for`);
      }
      const binding = socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, EXPORTER_CONTEXT);
      const proofValid = verifySignature(proofDigest(parsed.publicKey), proofMessage(parsed.spiffeId.toString(), parsed.publicKeyDer, binding), parsed.publicKey, parsed.proof);
      if (!proofValid) throw new SignerRefusal(403, ErrorCodes.SIGNER_REFUSED, 'proof of possession does not verify: the request must be signed by the key being certified, on this connection');
      const caller = await this.authenticate(req, socket);
      method = caller.method;
      const ttlMs = Math.min(parsed.ttlMs, this.options.maxTtlMs);
      let issued;
      try {
        issued = this.ca.issue({ spiffeId: parsed.spiffeId, publicKey: spkiDer(parsed.publicKey), ttlMs });
      } catch (error) {
        throw new SignerRefusal(503, ErrorCodes.SIGNER_UNAVAILABLE, `cannot issue: ${errorMessage(error)}`);
      }
      const response: SignResponse = { certificateChain: issued.chainPem, bundle: this.bundle.toSpiffeJson() };
      sendJson(res, 200, response);
      this.options.log.info(
        {
          spiffeId: parsed.spiffeId.toString(),
          serial: issued.certificate.serialNumber,
          notAfter: issued.notAfter.toISOString(),
          method,
          caller: caller.subject,
          pod: caller.pod,
          remote: req.socket.remoteAddress,
        },
        'certificate issued',
      );
      this.options.onOutcome?.({ result: 'issued', method });
    } catch (error) {
      const refusal = error instanceof SignerRefusal ? error : new SignerRefusal(500, ErrorCodes.SIGNER_UNAVAILABLE, `internal error: ${errorMessage(error)}`);
      if (!res.headersSent) sendJson(res, refusal.status, { error: refusal.message, code: refusal.code } satisfies ErrorResponse);
      else res.destroy();
      const failed = refusal.status >= 500;
      const fields = { status: refusal.status, code: refusal.code, reason: refusal.message, method, path, remote: req.socket.remoteAddress };
      if (failed) this.options.log.error(fields, 'signer request failed');
      else this.options.log.warn(fields, 'signer request refused');
      if (path === SIGN_PATH) this.options.onOutcome?.({ result: failed ? 'failed' : 'refused', method });
    }
  }

  /**
   * Who is asking. A verified client certificate for exactly the gateway's ID renews; otherwise
   * the bearer credential decides: a bootstrap token is spent, anything else goes to TokenReview.
   */
  private async authenticate(req: IncomingMessage, socket: TLSSocket): Promise<{ method: SignerMethod; subject: string; pod?: string }> {
    const auth = this.options.auth;
    let certificateProblem: string | undefined;
    if (socket.authorized) {
      try {
        const id = this.verifier.verifySocket(socket);
        if (!id.equals(this.gatewayId)) certificateProblem = `the client certificate is ${id.toString()}, not ${this.gatewayId.toString()}`;
        else if (!auth.renewal) certificateProblem = 'renewal with the current certificate is disabled on this signer';
        else return { method: 'renewal', subject: `certificate ${socket.getPeerX509Certificate()?.serialNumber ?? ''}` };
      } catch (error) {
        certificateProblem = `client certificate refused: ${error instanceof TrustError ? error.message : errorMessage(error)}`;
      }
    } else if (socket.getPeerX509Certificate()) {
      certificateProblem = `client certificate refused: ${String(socket.authorizationError)}`;
    }
    const header = req.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    if (!bearer) {
      throw new SignerRefusal(401, ErrorCodes.SIGNER_REFUSED, certificateProblem ?? 'no credential: send a bearer token or renew with the current gateway certificate');
    }
    const tokens = auth.bootstrapTokens;
    if (tokens && BootstrapTokens.isBootstrapToken(bearer)) {
      try {
        const { id } = tokens.consume(bearer);
        return { method: 'bootstrap-token', subject: `bootstrap token ${id}` };
      } catch (error) {
        throw new SignerRefusal(401, error instanceof TokenError ? error.code : ErrorCodes.SIGNER_REFUSED, errorMessage(error));
      }
    }
    const kubernetes = auth.kubernetes;
    if (!kubernetes) throw new SignerRefusal(401, ErrorCodes.SIGNER_REFUSED, 'bearer token not accepted: this signer takes no Kubernetes ServiceAccount tokens');
    let review;
    try {
      review = await kubernetes.reviewer.review(bearer, [kubernetes.audience]);
    } catch (error) {
      throw new SignerRefusal(503, ErrorCodes.SIGNER_UNAVAILABLE, `cannot verify the token: ${errorMessage(error)}`);
    }
    if (!review.authenticated) throw new SignerRefusal(401, ErrorCodes.SIGNER_REFUSED, `ServiceAccount token not authenticated${review.error ? `: ${review.error}` : ''}`);
    // The API server returns the audiences the token is valid for; a server that ignores
    // audiences returns none, and then the token may well be meant for someone else.
    if (!review.audiences.includes(kubernetes.audience)) throw new SignerRefusal(401, ErrorCodes.SIGNER_REFUSED, `ServiceAccount token is not bound to audience "${kubernetes.audience}"`);
    const account = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(review.username ?? '');
    const name = account ? `${account[1]}:${account[2]}` : undefined;
    if (!name || !kubernetes.serviceAccounts.includes(name)) {
      throw new SignerRefusal(403, ErrorCodes.PERMISSION_DENIED, `${review.username ?? 'the caller'} may not obtain ${this.gatewayId.toString()} (allowed: ${kubernetes.serviceAccounts.join(', ')})`);
    }
    return { method: 'kubernetes', subject: review.username ?? name, pod: review.podName };
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        reject(new SignerRefusal(413, ErrorCodes.SIGNER_REFUSED, `request body larger than ${MAX_REQUEST_BYTES} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
