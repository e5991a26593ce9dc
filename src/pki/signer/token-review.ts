import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { ErrorCodes, errorMessage, FedgateError, PkiError } from '../../core/errors.js';

/** What the API server says about a bearer token. */
export interface TokenReviewResult {
  authenticated: boolean;
  /** `system:serviceaccount:<namespace>:<name>` for a ServiceAccount token. */
  username?: string;
  uid?: string;
  /** The requested audiences the token is valid for (the API server's intersection). */
  audiences: string[];
  /** The pod a bound token belongs to, when the API server says (names only, for the audit log). */
  podName?: string;
  error?: string;
}

export interface TokenReviewer {
  review(token: string, audiences: readonly string[]): Promise<TokenReviewResult>;
}

export interface KubernetesTokenReviewerOptions {
  /** API server base URL, e.g. `https://10.96.0.1:443`. */
  server: string;
  /** PEM bundle the API server's certificate is checked against (in a pod: the ServiceAccount's ca.crt). */
  caFile?: string;
  /** The signer's own credential for the API server; re-read on every call because kubelet rotates it. */
  tokenFile: string;
  timeoutMs?: number;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * The TokenReview API (authentication.k8s.io/v1) spoken directly over HTTPS: the signer needs this
 * one call, not a Kubernetes client library. The signer's ServiceAccount needs `create` on
 * `tokenreviews` (the built-in ClusterRole `system:auth-delegator`).
 */
export class KubernetesTokenReviewer implements TokenReviewer {
  constructor(private readonly options: KubernetesTokenReviewerOptions) {}

  /** The API server and credentials of the pod this process runs in. */
  static inCluster(env: NodeJS.ProcessEnv = process.env): KubernetesTokenReviewer {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) throw new FedgateError(ErrorCodes.CONFIG_INVALID, 'not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); give --kube-api-server and --kube-token-file');
    return new KubernetesTokenReviewer({ server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: `${SERVICE_ACCOUNT_DIR}/ca.crt`, tokenFile: `${SERVICE_ACCOUNT_DIR}/token` });
  }

  async review(token: string, audiences: readonly string[]): Promise<TokenReviewResult> {
    const url = new URL(`${this.options.server.replace(/\/$/, '')}/apis/authentication.k8s.io/v1/tokenreviews`);
    let credential: string;
    let ca: string | undefined;
    try {
      credential = readFileSync(this.options.tokenFile, 'utf8').trim();
      ca = this.options.caFile ? readFileSync(this.options.caFile, 'utf8') : undefined;
    } catch (error) {
      throw new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `cannot read the signer's own Kubernetes credentials: ${errorMessage(error)}`);
    }
    const payload = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } });
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(
        url,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(payload) },
          ...(url.protocol === 'https:' ? { ca, minVersion: 'TLSv1.2' as const } : {}),
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    }).catch((error: unknown) => {
      throw new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `TokenReview at ${url.host} failed: ${errorMessage(error)}`);
    });
    let body: { status?: { authenticated?: unknown; user?: { username?: unknown; uid?: unknown; extra?: Record<string, unknown> }; audiences?: unknown; error?: unknown }; message?: unknown } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    if (status < 200 || status >= 300 || !body) {
      const message = typeof body?.message === 'string' ? body.message : text.slice(0, 200);
      throw new PkiError(ErrorCodes.SIGNER_UNAVAILABLE, `TokenReview at ${url.host} answered ${status}: ${message}`);
    }
    const result = body.status ?? {};
    const podNames = result.user?.extra?.['authentication.kubernetes.io/pod-name'];
    return {
      authenticated: result.authenticated === true,
      username: typeof result.user?.username === 'string' ? result.user.username : undefined,
      uid: typeof result.user?.uid === 'string' ? result.user.uid : undefined,
      audiences: Array.isArray(result.audiences) ? result.audiences.filter((a): a is string => typeof a === 'string') : [],
      podName: Array.isArray(podNames) && typeof podNames[0] === 'string' ? podNames[0] : undefined,
      error: typeof result.error === 'string' ? result.error : undefined,
    };
  }
}
