import { X509Certificate } from 'node:crypto';
import { get } from 'node:http';
import { ErrorCodes, errorMessage, FedgateError, TokenError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { certificateHash, hashesEqual, parseJoinToken } from '../../model/join-token.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { ClusterInfo, JoinResponse } from '../../proto/gen/fedgate.js';
import { JoinClient } from '../../proto/gen/fedgate.js';
import { channelCredentials, clientOptions, grpc } from '../../proto/grpc-transport.js';
import { fromGrpcError } from '../../proto/grpc-errors.js';
import { uriSans } from '../../pki/pem.js';
import { PeerVerifier } from '../../pki/peer-verifier.js';
import { checkServer } from '../../pki/tls-options.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import { TrustStore } from '../../pki/trust-store.js';
import type { FederationMembership } from './membership.js';

export type { FederationMembership } from './membership.js';

function fetchText(url: string, timeoutMs: number, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: timeoutMs }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`${url} answered ${response.statusCode}`));
        return;
      }
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > maxBytes) request.destroy(new Error(`${url} sent more than ${maxBytes} bytes`));
      });
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error(`${url} did not answer within ${timeoutMs}ms`)));
    request.on('error', reject);
  });
}

/**
 * Joins the federation with a one-time token. The controller CA is fetched from the address in
 * the token and accepted only if its SHA-256 matches the hash in the token (as kubeadm does with
 * its discovery hash); from then on Node's TLS verifies the controller against that CA, and the
 * controller's SPIFFE ID is checked on top.
 */
export async function joinFederation(options: { token: string; info: ClusterInfo; bundle: TrustBundle; log: Logger; timeoutMs?: number; controllerCaPem?: string }): Promise<FederationMembership> {
  const { claims } = parseJoinToken(options.token);
  if (claims.cluster !== options.info.name) {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, `this join token is for cluster "${claims.cluster}", but this gateway is cluster "${options.info.name}"`);
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  let caPem: string;
  try {
    // Given by the operator when the controller's admin port is not reachable from here; checked
    // against the token's hash all the same.
    caPem = options.controllerCaPem ?? (await fetchText(`http://${claims.caAddress}/ca.crt`, timeoutMs, 64 * 1024));
  } catch (error) {
    // The controller may simply not be up yet: worth retrying, unlike a token it refuses.
    throw new FedgateError(ErrorCodes.UNAVAILABLE, `cannot fetch the controller CA from ${claims.caAddress}: ${errorMessage(error)}`);
  }
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, `${claims.caAddress} did not serve a certificate`);
  }
  if (!hashesEqual(certificateHash(ca.raw), claims.caHash)) {
    throw new TokenError(ErrorCodes.TOKEN_INVALID, `the controller CA served by ${claims.caAddress} does not match the hash in the join token; refusing to trust it`);
  }
  const caId = uriSans(ca).map((uri) => SpiffeId.tryParse(uri)).find((id) => id !== undefined);
  if (!caId) throw new TokenError(ErrorCodes.TOKEN_INVALID, 'the controller CA carries no SPIFFE trust domain');
  const controllerId = SpiffeId.controller(caId.trustDomain);
  const trust = new TrustStore([TrustBundle.fromPem(caId.trustDomain, caPem, 1)]);
  const verifier = new PeerVerifier(trust);
  const client = new JoinClient(
    claims.joinAddress,
    channelCredentials({ rootsPem: caPem, checkServerIdentity: (_host, cert) => checkServer(verifier, cert, (id) => (id.equals(controllerId) ? undefined : `expected the controller ${controllerId.toString()}, got ${id.toString()}`)) }),
    clientOptions(),
  );
  try {
    const response = await new Promise<JoinResponse>((resolve, reject) => {
      client.join({ token: options.token, cluster: options.info, bundleJson: JSON.stringify(options.bundle.toSpiffeJson()) }, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, value) =>
        error ? reject(fromGrpcError(error, 'join refused')) : resolve(value),
      );
    });
    options.log.info({ federation: response.federation, api: response.apiAddress }, 'joined the federation');
    return {
      cluster: options.info.name,
      federation: response.federation,
      apiAddress: response.apiAddress,
      controllerSpiffeId: response.controllerSpiffeId,
      controllerCaPem: response.controllerCaPem || caPem,
      joinedAt: Date.now(),
    };
  } finally {
    client.close();
  }
}
