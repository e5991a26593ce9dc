/**
 * The cluster CA signer (src/pki/signer) against real sockets: HTTPS with its own SVID, the
 * gateway's client, bootstrap tokens, renewal by mutual TLS, Kubernetes ServiceAccount tokens
 * checked through the TokenReview API of the fake API server, proof of possession bound to the
 * TLS connection, and CA rotation seen through the signer.
 */
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { ErrorCodes } from '../../src/core/errors.js';
import { createRootLogger, type Logger } from '../../src/core/logger.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { generateKey, spkiDer } from '../../src/pki/keys.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import { MIN_TLS_VERSION } from '../../src/pki/tls-options.js';
import { BootstrapTokens } from '../../src/pki/signer/bootstrap-tokens.js';
import { SignerClient } from '../../src/pki/signer/signer-client.js';
import { EXPORTER_BYTES, EXPORTER_CONTEXT, EXPORTER_LABEL, proofMessage, SIGN_PATH } from '../../src/pki/signer/signer-protocol.js';
import { SvidSigner, type SignerAuthentication, type SignerOutcome } from '../../src/pki/signer/svid-signer.js';
import { KubernetesTokenReviewer } from '../../src/pki/signer/token-review.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';

const TD = 'us-east.acme.internal';
const GATEWAY = SpiffeId.gateway(TD, 'us-east');
const HOUR = 3_600_000;

/** A logger whose lines the test can read (to check what is logged, and that no secret is). */
function capturingLogger(): { log: Logger; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const chunks: string[] = [];
  const log = createRootLogger({ level: 'info', destination: { write: (chunk: string) => void chunks.push(chunk) } });
  return { log, text: () => chunks.join(''), lines: () => chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('cluster CA signer', () => {
  let dir: string;
  let caDir: string;
  let signer: SvidSigner | undefined;
  let kube: FakeKubeApi | undefined;
  let logs: ReturnType<typeof capturingLogger>;
  let outcomes: SignerOutcome[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-signer-'));
    caDir = join(dir, 'ca');
    PkiDirectory.init(caDir, { trustDomain: TD });
    writeFileSync(join(dir, 'ca.crt'), readFileSync(join(caDir, 'ca.crt')));
    logs = capturingLogger();
    outcomes = [];
  });
  afterEach(async () => {
    await signer?.stop();
    signer = undefined;
    await kube?.close();
    kube = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function startSigner(auth: Partial<SignerAuthentication>, maxTtlMs = HOUR): Promise<SvidSigner> {
    signer = new SvidSigner({ pkiDir: caDir, cluster: 'us-east', listen: '127.0.0.1:0', maxTtlMs, auth: { renewal: false, ...auth }, log: logs.log, onOutcome: (o) => outcomes.push(o), refreshIntervalMs: 3_600_000 });
    await signer.start();
    return signer;
  }

  function client(options: { tokenFile?: string; caFile?: string } = {}): SignerClient {
    return new SignerClient({ address: `127.0.0.1:${signer?.port}`, trustDomain: TD, caFile: options.caFile ?? join(dir, 'ca.crt'), tokenFile: options.tokenFile });
  }

  /** Sends a sign request by hand on a TLS connection, with a proof computed by `prove`. */
  async function rawSign(token: string | undefined, prove: (socket: TLSSocket, spki: Buffer, privateKey: KeyObject) => { publicKey: string; proof: string }, clientCertificate?: Svid): Promise<{ status: number; body: string }> {
    const socket = connect({ host: '127.0.0.1', port: signer?.port ?? 0, ca: readFileSync(join(caDir, 'ca.crt'), 'utf8'), minVersion: MIN_TLS_VERSION, checkServerIdentity: () => undefined, key: clientCertificate?.keyPem, cert: clientCertificate?.chainPem });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const { privateKey, publicKey } = generateKey('ec-p256');
    const spki = spkiDer(publicKey);
    const body = JSON.stringify({ spiffeId: GATEWAY.toString(), ttlSeconds: 3600, ...prove(socket, spki, privateKey) });
    return new Promise((resolve, reject) => {
      const req = request({ createConnection: () => socket, method: 'POST', path: SIGN_PATH, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          socket.destroy();
          resolve({ status: res.statusCode ?? 0, body: text });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** A correct proof of possession on this connection. */
  function honestProof(socket: TLSSocket, spki: Buffer, privateKey: KeyObject): { publicKey: string; proof: string } {
    return {
      publicKey: spki.toString('base64'),
      proof: sign('sha256', proofMessage(GATEWAY.toString(), spki, socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, EXPORTER_CONTEXT)), privateKey).toString('base64'),
    };
  }

  function tokenFile(token: string, name = 'token'): string {
    const file = join(dir, name);
    writeFileSync(file, `${token}\n`);
    return file;
  }

  describe('bootstrap tokens (plain hosts)', () => {
    it('issues the gateway certificate once per token, for a key generated by the gateway, and logs it without the token', async () => {
      const tokens = new BootstrapTokens(join(dir, 'tokens'));
      await startSigner({ bootstrapTokens: tokens });
      const { token, id } = tokens.create(600_000);
      const answer = await client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR });
      expect(answer.svid.spiffeId.equals(GATEWAY)).toBe(true);
      expect(answer.svid.certificate.checkPrivateKey(createPrivateKey(answer.svid.keyPem))).toBe(true);
      expect(answer.svid.certificate.checkIssued(new PkiDirectory(caDir).ca().certificate)).toBe(true);
      expect(answer.bundle.sequence).toBe(new PkiDirectory(caDir).bundle().sequence);

      await expect(client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toMatchObject({
        code: ErrorCodes.SIGNER_REFUSED,
        message: expect.stringContaining('bootstrap token unknown or already used'),
      });
      const issued = logs.lines().find((l) => l.msg === 'certificate issued');
      expect(issued).toMatchObject({ spiffeId: GATEWAY.toString(), method: 'bootstrap-token', caller: `bootstrap token ${id}`, serial: answer.svid.certificate.serialNumber });
      expect(logs.text()).not.toContain(token);
      expect(logs.text()).not.toContain('PRIVATE KEY');
      expect(outcomes).toEqual([
        { result: 'issued', method: 'bootstrap-token' },
        { result: 'refused', method: 'none' },
      ]);
    });

    it('refuses an expired token, and a request without any credential', async () => {
      let now = Date.now();
      const tokens = new BootstrapTokens(join(dir, 'tokens'), { now: () => now });
      await startSigner({ bootstrapTokens: tokens });
      const { token } = tokens.create(60_000);
      now += 120_000;
      await expect(client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toThrow(/bootstrap token expired at/);
      await expect(client({ tokenFile: join(dir, 'absent') }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toThrow(/no credential.*no token in .*absent/);
    });

    it('caps the lifetime at the signer maximum', async () => {
      const tokens = new BootstrapTokens(join(dir, 'tokens'));
      await startSigner({ bootstrapTokens: tokens }, 120_000);
      const { svid } = await client({ tokenFile: tokenFile(tokens.create(60_000).token) }).requestSvid(GATEWAY, { ttlMs: 24 * HOUR });
      expect(svid.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(120_000);
      expect(svid.notAfter.getTime() - Date.now()).toBeGreaterThan(100_000);
    });
  });

  describe('renewal with the current certificate (mutual TLS)', () => {
    it('renews a valid gateway certificate without a token, and refuses other identities of the same CA', async () => {
      await startSigner({ renewal: true });
      const ca = new PkiDirectory(caDir).ca();
      const current = issueSvid(ca, GATEWAY, { ttlMs: HOUR });
      const { svid } = await client().requestSvid(GATEWAY, { ttlMs: HOUR, current });
      expect(svid.certificate.serialNumber).not.toBe(current.certificate.serialNumber);
      expect(logs.lines().find((l) => l.msg === 'certificate issued')).toMatchObject({ method: 'renewal', caller: `certificate ${current.certificate.serialNumber}` });

      const workload = issueSvid(ca, SpiffeId.workload(TD, 'default', 'web'), { ttlMs: HOUR });
      await expect(client().requestSvid(GATEWAY, { ttlMs: HOUR, current: workload })).rejects.toThrow(/client certificate is spiffe:\/\/us-east.acme.internal\/ns\/default\/sa\/web, not/);
      // Asking for the workload's own identity (or any other) is refused even with a valid credential.
      await expect(client().requestSvid(SpiffeId.workload(TD, 'default', 'web'), { ttlMs: HOUR, current })).rejects.toMatchObject({
        code: ErrorCodes.SIGNER_REFUSED,
        message: expect.stringContaining(`this signer issues ${GATEWAY.toString()} only`),
      });
    });

    it('does not renew an expired certificate, nor one from another CA', async () => {
      await startSigner({ renewal: true });
      // Issued four minutes ago for one minute (the CA was made five minutes back, backdated).
      const earlier = new PkiDirectory(caDir, { clock: { now: () => Date.now() - 240_000 } }).ca();
      const expired = issueSvid(earlier, GATEWAY, { ttlMs: 60_000 });
      expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
      const withExpired = await rawSign(undefined, honestProof, expired);
      expect(withExpired.status).toBe(401);
      expect(JSON.parse(withExpired.body).error).toBe('client certificate refused: CERT_HAS_EXPIRED');
      // The client itself does not even present an expired certificate.
      await expect(client().requestSvid(GATEWAY, { ttlMs: HOUR, current: expired })).rejects.toThrow('no credential: send a bearer token or renew with the current gateway certificate');

      const foreign = PkiDirectory.init(join(dir, 'foreign'), { trustDomain: TD }).ca();
      const forged = issueSvid(foreign, GATEWAY, { ttlMs: HOUR });
      await expect(client().requestSvid(GATEWAY, { ttlMs: HOUR, current: forged })).rejects.toThrow(/client certificate refused/);
      expect(outcomes.map((o) => o.result)).toEqual(['refused', 'refused', 'refused']);
      // And a valid one, by hand, does renew: the refusals above were about the certificates.
      const valid = await rawSign(undefined, honestProof, issueSvid(new PkiDirectory(caDir).ca(), GATEWAY, { ttlMs: HOUR }));
      expect(valid.status).toBe(200);
    });

    it('is refused when the signer disables renewal (Kubernetes: revoking the account must cut a gateway off)', async () => {
      await startSigner({ renewal: false, bootstrapTokens: new BootstrapTokens(join(dir, 'tokens')) });
      const current = issueSvid(new PkiDirectory(caDir).ca(), GATEWAY, { ttlMs: HOUR });
      await expect(client().requestSvid(GATEWAY, { ttlMs: HOUR, current })).rejects.toThrow('renewal with the current certificate is disabled on this signer');
    });
  });

  describe('Kubernetes ServiceAccount tokens (TokenReview)', () => {
    async function startWithKube(): Promise<FakeKubeApi> {
      kube = await FakeKubeApi.start();
      const saToken = join(dir, 'signer-sa-token');
      writeFileSync(saToken, kube.token);
      await startSigner({
        kubernetes: { reviewer: new KubernetesTokenReviewer({ server: kube.url, tokenFile: saToken }), audience: 'fedgate-signer', serviceAccounts: ['fedgate-system:fedgate-gateway'] },
      });
      return kube;
    }

    it('issues to the gateway ServiceAccount with a token bound to the signer audience, logging the pod', async () => {
      const api = await startWithKube();
      const token = api.issueServiceAccountToken({ namespace: 'fedgate-system', serviceAccount: 'fedgate-gateway', audiences: ['fedgate-signer'], podName: 'fedgate-gateway-7d9f-abcde' });
      const { svid } = await client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR });
      expect(svid.spiffeId.equals(GATEWAY)).toBe(true);
      expect(logs.lines().find((l) => l.msg === 'certificate issued')).toMatchObject({ method: 'kubernetes', caller: 'system:serviceaccount:fedgate-system:fedgate-gateway', pod: 'fedgate-gateway-7d9f-abcde' });
      const review = api.requestsMatching({ method: 'POST', resource: 'tokenreviews' });
      expect(review).toHaveLength(1);
      expect(review[0]?.body).toMatchObject({ spec: { audiences: ['fedgate-signer'] } });
      expect(logs.text()).not.toContain(token);
    });

    it('refuses a token for another audience, another account, a revoked one, and says why', async () => {
      const api = await startWithKube();
      const apiAudience = api.issueServiceAccountToken({ namespace: 'fedgate-system', serviceAccount: 'fedgate-gateway' });
      await expect(client({ tokenFile: tokenFile(apiAudience) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toThrow(/not authenticated: .*token audiences .* is invalid for the target audiences \["fedgate-signer"\]/);
      const other = api.issueServiceAccountToken({ namespace: 'default', serviceAccount: 'web', audiences: ['fedgate-signer'] });
      await expect(client({ tokenFile: tokenFile(other) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toThrow(
        'system:serviceaccount:default:web may not obtain spiffe://us-east.acme.internal/fedgate/gateway/us-east (allowed: fedgate-system:fedgate-gateway)',
      );
      const revoked = api.issueServiceAccountToken({ namespace: 'fedgate-system', serviceAccount: 'fedgate-gateway', audiences: ['fedgate-signer'] });
      api.revokeServiceAccountTokens('fedgate-system', 'fedgate-gateway');
      await expect(client({ tokenFile: tokenFile(revoked) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toThrow(/token has been invalidated/);
      expect(outcomes.map((o) => o.result)).toEqual(['refused', 'refused', 'refused']);
    });

    it('answers "unavailable" (retry later) when the API server cannot be asked', async () => {
      const api = await startWithKube();
      const token = api.issueServiceAccountToken({ namespace: 'fedgate-system', serviceAccount: 'fedgate-gateway', audiences: ['fedgate-signer'] });
      api.failNext({ resource: 'tokenreviews' }, 1, 500);
      await expect(client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toMatchObject({ code: ErrorCodes.SIGNER_UNAVAILABLE, message: expect.stringContaining('cannot verify the token: TokenReview') });
      expect(outcomes).toEqual([{ result: 'failed', method: 'none' }]);
      await expect(client({ tokenFile: tokenFile(token) }).requestSvid(GATEWAY, { ttlMs: HOUR })).resolves.toBeDefined();
    });
  });

  describe('the connection', () => {
    it('refuses a proof of possession made for another connection or by another key, without spending the token', async () => {
      const tokens = new BootstrapTokens(join(dir, 'tokens'));
      await startSigner({ bootstrapTokens: tokens });
      const { token } = tokens.create(60_000);
      const otherConnection = await rawSign(token, (_socket, spki) => {
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        void publicKey;
        return { publicKey: spki.toString('base64'), proof: sign('sha256', proofMessage(GATEWAY.toString(), spki, Buffer.alloc(EXPORTER_BYTES)), privateKey).toString('base64') };
      });
      expect(otherConnection.status).toBe(403);
      expect(JSON.parse(otherConnection.body)).toEqual({ error: expect.stringContaining('proof of possession does not verify'), code: ErrorCodes.SIGNER_REFUSED });
      const { privateKey: stranger } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const wrongKey = await rawSign(token, (socket, spki) => ({
        publicKey: spki.toString('base64'),
        proof: sign('sha256', proofMessage(GATEWAY.toString(), spki, socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, EXPORTER_CONTEXT)), stranger).toString('base64'),
      }));
      expect(wrongKey.status).toBe(403);
      expect((await rawSign(token, honestProof)).status).toBe(200);
      expect((await rawSign(token, honestProof)).status).toBe(401);
    });

    it('names the field of a malformed request, and refuses keys it does not accept', async () => {
      const tokens = new BootstrapTokens(join(dir, 'tokens'));
      await startSigner({ bootstrapTokens: tokens });
      const ed25519 = generateKeyPairSync('ed25519');
      const weak = await rawSign(tokens.create(60_000).token, () => ({ publicKey: spkiDer(ed25519.publicKey).toString('base64'), proof: 'AAAA' }));
      expect(weak.status).toBe(400);
      expect(JSON.parse(weak.body).error).toBe('publicKey: ed25519 keys are not accepted (EC P-256/P-384 or RSA)');
      const garbage = await rawSign(tokens.create(60_000).token, () => ({ publicKey: 'not base64!', proof: 'AAAA' }));
      expect(JSON.parse(garbage.body).error).toBe('publicKey: required, base64 DER SubjectPublicKeyInfo');
    });

    it('is refused by the gateway when the server is not the signer of its trust domain', async () => {
      const tokens = new BootstrapTokens(join(dir, 'tokens'));
      await startSigner({ bootstrapTokens: tokens });
      // Anchors of another CA: Node's TLS refuses the signer's certificate.
      const other = PkiDirectory.init(join(dir, 'other'), { trustDomain: TD });
      await expect(client({ caFile: join(other.dir, 'ca.crt'), tokenFile: tokenFile(tokens.create(60_000).token) }).requestSvid(GATEWAY, { ttlMs: HOUR })).rejects.toMatchObject({
        code: ErrorCodes.SIGNER_UNAVAILABLE,
        message: expect.stringMatching(/unable to get local issuer certificate|self.signed|certificate/),
      });
      // The token was never sent: it is still good.
      await expect(client({ tokenFile: join(dir, 'token') }).requestSvid(GATEWAY, { ttlMs: HOUR })).resolves.toBeDefined();
    });
  });

  it('follows a CA rotation: the next CA reaches gateways in the bundle, then signs, with a new serving certificate', async () => {
    const tokens = new BootstrapTokens(join(dir, 'tokens'));
    const running = await startSigner({ bootstrapTokens: tokens, renewal: true });
    const gateway = client({ tokenFile: tokenFile(tokens.create(60_000).token) });
    const first = await gateway.requestSvid(GATEWAY, { ttlMs: HOUR });
    const pki = new PkiDirectory(caDir);
    const oldCa = pki.ca();

    pki.prepare();
    running.refresh();
    const prepared = await gateway.fetchBundle();
    expect(prepared.authorities).toHaveLength(2);
    expect(prepared.sequence).toBeGreaterThan(first.bundle.sequence);

    pki.activate(HOUR);
    running.refresh();
    // The gateway's anchors file still holds only the old CA: it reaches the signer (now serving
    // with a certificate of the new CA) through the bundle it learned, and renews with its old leaf.
    const renewed = await gateway.requestSvid(GATEWAY, { ttlMs: HOUR, current: first.svid });
    expect(renewed.svid.certificate.checkIssued(oldCa.certificate)).toBe(false);
    expect(renewed.svid.certificate.checkIssued(pki.ca().certificate)).toBe(true);
    expect(running.describe()).toMatchObject({ ca: { serial: pki.ca().serialNumber } });
  });
});
