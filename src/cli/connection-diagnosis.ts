/**
 * What is really at an address the CLI could not talk to. grpc-js reports every failure to reach
 * the Admin API as UNAVAILABLE with the transport's own words (`ECONNREFUSED`, OpenSSL's "wrong
 * version number", "self-signed certificate in certificate chain"), none of which says which
 * mistake was made. After such a failure, and only then, the address is probed: a TCP connect, a
 * TLS handshake with the operator's credentials that accepts any certificate so it can be looked
 * at, and a plain HTTP request when the peer does not speak TLS. The answer is one line naming
 * what was found and what to do, with a stable code.
 */
import { X509Certificate } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { formatDuration } from '../core/duration.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { uriSans } from '../pki/pem.js';

const PROBE_TIMEOUT_MS = 3000;
const API_HINT = 'use the controller\'s API address (spec.controller.listen in federation.yaml, or --controller)';

export interface ProbeCredentials {
  certPem: string;
  keyPem: string;
  caPem: string;
  /** Where they were read from, for messages. */
  dir: string;
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

/** A skew readable at a glance and stable within a minute (`2h`, `45m`, `30s`). */
export function formatSkew(ms: number): string {
  const abs = Math.abs(ms);
  return formatDuration(abs >= 60_000 ? Math.round(abs / 60_000) * 60_000 : Math.max(1000, Math.round(abs / 1000) * 1000));
}

function isoSeconds(text: string): string {
  return new Date(text).toISOString().replace(/\.000Z$/, 'Z');
}

/** The SPIFFE ID a certificate carries, if any. */
function spiffeIdOf(certificate: X509Certificate): SpiffeId | undefined {
  return uriSans(certificate)
    .map((uri) => SpiffeId.tryParse(uri))
    .find((id) => id !== undefined);
}

/**
 * A certificate outside its validity by this machine's clock. `whose` names it in the message;
 * undefined when the clock is inside the window.
 */
export function validityProblem(certificate: X509Certificate, whose: string, now = Date.now()): { code: 'before' | 'after'; message: string; skewMs: number } | undefined {
  const from = Date.parse(certificate.validFrom);
  const to = Date.parse(certificate.validTo);
  if (now < from) {
    return { code: 'before', skewMs: from - now, message: `${whose} is valid from ${isoSeconds(certificate.validFrom)}, ${formatSkew(from - now)} ahead of this machine's clock` };
  }
  if (now > to) {
    return { code: 'after', skewMs: now - to, message: `${whose} expired at ${isoSeconds(certificate.validTo)}, ${formatSkew(now - to)} ago by this machine's clock` };
  }
  return undefined;
}

type TcpResult = { ok: true } | { ok: false; code: string; message: string };

function probeTcp(host: string, port: number): Promise<TcpResult> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    socket.setTimeout(PROBE_TIMEOUT_MS, () => {
      socket.destroy();
      resolve({ ok: false, code: 'ETIMEDOUT', message: `no answer within ${PROBE_TIMEOUT_MS / 1000}s` });
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ ok: false, code: error.code ?? 'ERROR', message: error.message }));
  });
}

type TlsResult =
  | { kind: 'tls'; certificate: X509Certificate | undefined; authorizationError: string | undefined; alert: string | undefined }
  | { kind: 'not-tls'; reason: string }
  | { kind: 'silent' };

/**
 * A TLS 1.2+ handshake presenting the operator's certificate, accepting any server certificate.
 * After it, an HTTP/2 preface is sent: a TLS 1.3 server judges the client certificate after the
 * client's side of the handshake is done, so a refusal arrives as an alert only then.
 */
function probeTls(host: string, port: number, credentials: ProbeCredentials): Promise<TlsResult> {
  return new Promise((resolve) => {
    let settled = false;
    let handshaken: Extract<TlsResult, { kind: 'tls' }> | undefined;
    const finish = (result: TlsResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const socket = tlsConnect({
      host,
      port,
      servername: 'fedgate',
      ca: credentials.caPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
      // A diagnosis, not a connection: it reads which certificate answers (and whether it verifies,
      // reported from authorizationError) and sends nothing after the handshake; the client
      // certificate it presents is public, its key never leaves this process.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.2',
    });
    const timer = setTimeout(() => finish(handshaken ?? { kind: 'silent' }), PROBE_TIMEOUT_MS);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(false);
      handshaken = {
        kind: 'tls',
        certificate: peer?.raw ? new X509Certificate(peer.raw) : undefined,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
        alert: undefined,
      };
      // An HTTP/2 client preface and an empty SETTINGS frame: a server that accepted us answers with its SETTINGS.
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    });
    socket.once('data', () => finish(handshaken ?? { kind: 'silent' }));
    socket.once('error', (error: Error) => {
      if (handshaken) finish({ ...handshaken, alert: error.message });
      else finish({ kind: 'not-tls', reason: error.message });
    });
    socket.once('close', () => finish(handshaken ?? { kind: 'not-tls', reason: 'closed the connection during the TLS handshake' }));
  });
}

function probeHttp(host: string, port: number): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const request = httpGet({ host, port, path: '/config', timeout: PROBE_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < 65_536) body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', () => resolve(undefined));
  });
}

/** The controller API address a controller's admin HTTP /config names, if the body is one. */
function controllerApiFromConfig(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { addresses?: { api?: unknown } };
    return typeof parsed.addresses?.api === 'string' ? parsed.addresses.api : undefined;
  } catch {
    return undefined;
  }
}

function describeName(certificate: X509Certificate): string {
  const subject = certificate.subject.replace(/\n/g, ', ');
  const sans = certificate.subjectAltName ? ` (${certificate.subjectAltName})` : '';
  return `"${subject}"${sans}`;
}

/** Local checks of the operator credentials, before any connection: expired, not yet valid, mismatched files. */
export function checkCredentials(credentials: ProbeCredentials, now = Date.now()): FedgateError | undefined {
  let certificate: X509Certificate;
  let ca: X509Certificate;
  try {
    certificate = new X509Certificate(credentials.certPem);
    ca = new X509Certificate(credentials.caPem);
  } catch (error) {
    return new FedgateError(ErrorCodes.CERTIFICATE_INVALID, `the operator credentials in ${credentials.dir} are not readable certificates (${(error as Error).message}); use the files the controller wrote to <pkiDir>/admin`);
  }
  const problem = validityProblem(certificate, `the operator certificate ${credentials.dir}/tls.crt`, now);
  if (problem?.code === 'after') {
    return new FedgateError(
      ErrorCodes.CREDENTIALS_EXPIRED,
      `${problem.message}: renew it (a controller restart rewrites <pkiDir>/admin when less than half its lifetime is left) or issue one with "fedgate ca issue --ca <controller pkiDir> --spiffe-id ${spiffeIdOf(certificate)?.toString() ?? 'spiffe://<trust domain>/fedgate/admin/operator'} --out ${credentials.dir}"`,
    );
  }
  if (problem?.code === 'before') {
    return new FedgateError(ErrorCodes.CLOCK_SKEW, `${problem.message}: this machine's clock is at least ${formatSkew(problem.skewMs)} behind the controller's that issued it; correct the clock (NTP) on one of them`);
  }
  if (!certificate.checkIssued(ca)) {
    return new FedgateError(ErrorCodes.CREDENTIALS_UNTRUSTED, `${credentials.dir}/tls.crt is not issued by ${credentials.dir}/ca.crt (${describeName(ca)}): the files come from different CAs; use the three files the controller wrote to <pkiDir>/admin together`);
  }
  return undefined;
}

/**
 * Probes `address` after a failed Admin call and returns the error that says what is there, or
 * undefined when the probe finds a controller that accepts these credentials (the original
 * failure then stands: it came from the controller itself).
 */
export async function diagnoseController(address: string, credentials: ProbeCredentials, expected: SpiffeId): Promise<FedgateError | undefined> {
  const { host, port } = splitAddress(address);
  const tcp = await probeTcp(host, port);
  if (!tcp.ok) {
    if (tcp.code === 'ECONNREFUSED') {
      return new FedgateError(ErrorCodes.CONTROLLER_UNREACHABLE, `nothing listens at ${address} (connection refused): start the controller ("fedgate controller") or ${API_HINT}`);
    }
    if (tcp.code === 'ENOTFOUND' || tcp.code === 'EAI_AGAIN') {
      return new FedgateError(ErrorCodes.CONTROLLER_UNREACHABLE, `cannot resolve the host of ${address} (${tcp.code}): check --controller or spec.controller.advertise`);
    }
    return new FedgateError(ErrorCodes.CONTROLLER_UNREACHABLE, `cannot reach ${address} (${tcp.code}: ${tcp.message}): check that the controller runs, the address, and any firewall between here and there`);
  }
  const tls = await probeTls(host, port, credentials);
  if (tls.kind === 'silent') {
    return new FedgateError(ErrorCodes.WRONG_PORT, `${address} accepts connections but does not complete a TLS handshake within ${PROBE_TIMEOUT_MS / 1000}s: it is not the controller's API; ${API_HINT}`);
  }
  if (tls.kind === 'not-tls') {
    const http = await probeHttp(host, port);
    const api = http ? controllerApiFromConfig(http.body) : undefined;
    if (api) {
      return new FedgateError(ErrorCodes.WRONG_PORT, `${address} is the controller's admin HTTP port (spec.controller.admin), not its API: use --controller ${api}`);
    }
    if (http) {
      return new FedgateError(ErrorCodes.WRONG_PORT, `${address} speaks plain HTTP (answered ${http.status}), not the controller's TLS API (a metrics or admin port, or a gateway's outbound port?): ${API_HINT}`);
    }
    return new FedgateError(ErrorCodes.WRONG_PORT, `${address} does not speak TLS (${tls.reason.replace(/^.*:(wrong version number|packet length too long|unexpected eof[^:]*):.*$/s, '$1').trim()}): it is not the controller's API; ${API_HINT}`);
  }
  const certificate = tls.certificate;
  if (!certificate) {
    return new FedgateError(ErrorCodes.WRONG_PORT, `${address} is a TLS server without a certificate, not the controller (${expected.toString()}); ${API_HINT}`);
  }
  const id = spiffeIdOf(certificate);
  const isController = id !== undefined && id.segments.join('/') === 'fedgate/controller';
  if (isController && id.equals(expected)) {
    const skew = validityProblem(certificate, `the controller's certificate at ${address}`);
    if (skew) {
      return new FedgateError(ErrorCodes.CLOCK_SKEW, `${skew.message}: the clocks of this machine and the controller differ by at least ${formatSkew(skew.skewMs)}; correct the clock (NTP) on the one that is wrong`);
    }
  }
  if (isController && (!id.equals(expected) || tls.authorizationError !== undefined)) {
    return new FedgateError(
      ErrorCodes.CREDENTIALS_UNTRUSTED,
      `${address} is the controller of trust domain "${id.trustDomain}", but the credentials in ${credentials.dir} are from another CA (${describeName(new X509Certificate(credentials.caPem))}): use the operator credentials of this controller (<its pkiDir>/admin)`,
    );
  }
  if (id?.gatewayCluster !== undefined) {
    return new FedgateError(ErrorCodes.WRONG_PORT, `${address} is the inbound port of cluster ${id.gatewayCluster}'s gateway (${id.toString()}), not the controller (${expected.toString()}); ${API_HINT}`);
  }
  if (!isController) {
    return new FedgateError(ErrorCodes.WRONG_PORT, `${address} is a TLS server for ${describeName(certificate)}, not the fedgate controller (${expected.toString()}); ${API_HINT}`);
  }
  if (tls.alert) {
    if (/certificate expired/i.test(tls.alert)) {
      return new FedgateError(ErrorCodes.CLOCK_SKEW, `the controller at ${address} says the operator certificate in ${credentials.dir} expired, yet by this machine's clock it is still valid: the controller's clock is ahead; correct the clock (NTP) on the one that is wrong`);
    }
    if (/unknown ca|bad certificate|certificate required|unsupported certificate/i.test(tls.alert)) {
      return new FedgateError(ErrorCodes.CREDENTIALS_UNTRUSTED, `the controller at ${address} refused the operator certificate in ${credentials.dir} (${tls.alert.replace(/^.*alert /s, 'TLS alert: ').replace(/:.*$/s, '')}): use the operator credentials of this controller (<its pkiDir>/admin)`);
    }
  }
  return undefined;
}

/** A gRPC peer that is not the Admin API: the controller's join port answers UNIMPLEMENTED. */
export function notTheAdminApi(address: string): FedgateError {
  return new FedgateError(ErrorCodes.WRONG_PORT, `${address} answers gRPC but has no Admin API: it is the controller's join port (spec.controller.joinListen); ${API_HINT}`);
}
