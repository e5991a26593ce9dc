import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, FedgateError, errorMessage } from '../../core/errors.js';
import { resourcePath, type KubeResource } from './kube-resources.js';

/** An answer of the API server other than success; `status` is the HTTP status (404, 409, 410 …). */
export class KubeApiError extends FedgateError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(ErrorCodes.DISCOVERY_FAILED, message);
  }
}

export interface KubeConnectionSettings {
  /** Path of a kubeconfig file; relative paths are taken from `baseDir` (the cluster file's directory). */
  kubeconfig?: string;
  context?: string;
}

/**
 * The kubeconfig to use: the configured file, else the pod's service account when running in a
 * cluster, else the default loading rules ($KUBECONFIG, ~/.kube/config).
 */
export function loadKubeConfig(settings: KubeConnectionSettings, baseDir: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const config = new KubeConfig();
  const file = settings.kubeconfig === undefined ? undefined : resolve(baseDir, settings.kubeconfig);
  try {
    if (file !== undefined) config.loadFromFile(file);
    else if (env.KUBERNETES_SERVICE_HOST) config.loadFromCluster();
    else config.loadFromDefault();
  } catch (error) {
    throw new FedgateError(ErrorCodes.DISCOVERY_FAILED, `cannot load the kubeconfig${file ? ` ${file}` : ''}: ${errorMessage(error)}`, { cause: error });
  }
  if (settings.context !== undefined) {
    const names = config.getContexts().map((c) => c.name);
    if (!names.includes(settings.context)) {
      throw new FedgateError(ErrorCodes.DISCOVERY_FAILED, `kubeconfig${file ? ` ${file}` : ''} has no context "${settings.context}" (it has: ${names.join(', ') || 'none'})`);
    }
    config.setCurrentContext(settings.context);
  }
  if (!config.getCurrentCluster()) {
    throw new FedgateError(ErrorCodes.DISCOVERY_FAILED, `kubeconfig${file ? ` ${file}` : ''} names no cluster for its current context "${config.getCurrentContext()}"`);
  }
  return config;
}

/**
 * REST calls to the API server with the kubeconfig's endpoint, TLS material and credentials
 * (client-node applies them, exec and token-file credentials included). Answers are kept as plain
 * JSON rather than the generated model classes: list items then have the same shape as watch
 * events, and one malformed object is skipped by the provider's own checks instead of failing the
 * deserialisation of a whole list.
 */
export class KubeClient {
  private pooled: { key: string; agent: HttpAgent } | undefined;

  constructor(
    readonly config: KubeConfig,
    private readonly timeoutMs = 15_000,
  ) {}

  /** Closes pooled connections. */
  close(): void {
    this.pooled?.agent.destroy();
    this.pooled = undefined;
  }

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '';
  }

  async list(resource: KubeResource, namespace: string | undefined, labelSelector?: string): Promise<{ resourceVersion: string; items: unknown[] }> {
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const body = (await this.request('GET', `${resourcePath(resource, namespace)}${query}`)) as { metadata?: { resourceVersion?: unknown }; items?: unknown } | null;
    const items = body?.items;
    if (!Array.isArray(items) && items !== null && items !== undefined) throw new KubeApiError(0, 'Invalid', `list of ${resource.plural}: "items" is not an array`);
    const resourceVersion = body?.metadata?.resourceVersion;
    return { resourceVersion: typeof resourceVersion === 'string' ? resourceVersion : '', items: Array.isArray(items) ? items : [] };
  }

  create(resource: KubeResource, namespace: string, body: unknown): Promise<unknown> {
    return this.request('POST', resourcePath(resource, namespace), body);
  }

  /** JSON merge patch (RFC 7386) of the object or of its `status` subresource. */
  mergePatch(resource: KubeResource, namespace: string, name: string, patch: unknown, subresource?: 'status'): Promise<unknown> {
    return this.request('PATCH', resourcePath(resource, namespace, name, subresource), patch, 'application/merge-patch+json');
  }

  /** Deletes; with `uid`, only that incarnation of the object (a recreated one is left alone). */
  delete(resource: KubeResource, namespace: string, name: string, uid?: string): Promise<unknown> {
    return this.request('DELETE', resourcePath(resource, namespace, name), uid ? { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid } } : undefined);
  }

  private async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const cluster = this.config.getCurrentCluster();
    if (!cluster) throw new KubeApiError(0, 'NoCluster', 'the kubeconfig has no current cluster');
    const url = new URL(`${cluster.server.replace(/\/$/, '')}${path}`);
    const options: RequestOptions = { method, headers: {} };
    await this.config.applyToHTTPSOptions(options);
    if (!cluster.proxyUrl) options.agent = this.agentFor(url, options);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    options.headers = { ...(options.headers ?? {}), accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }) };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolvePromise, reject) => {
      const req = send(url, options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer from ${url.host} within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    }).catch((error: unknown) => {
      throw new KubeApiError(0, 'Unreachable', `${method} ${path}: ${errorMessage(error)}`);
    });
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status >= 300) {
      const statusBody = parsed as { reason?: unknown; message?: unknown } | undefined;
      const reason = typeof statusBody?.reason === 'string' ? statusBody.reason : String(status);
      const message = typeof statusBody?.message === 'string' ? statusBody.message : text.slice(0, 200);
      throw new KubeApiError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`);
    }
    return parsed;
  }

  /**
   * client-node builds a new agent, so a new connection, for every request; a burst of status
   * writes then costs a TCP (and TLS) handshake each. One keep-alive agent is kept instead, built
   * from the same TLS material and rebuilt when that material changes (rotated client
   * certificates). Proxied clusters keep client-node's proxy agent.
   */
  private agentFor(url: URL, options: RequestOptions): HttpAgent {
    const tls = { ca: options.ca, cert: options.cert, key: options.key, pfx: options.pfx, passphrase: options.passphrase, rejectUnauthorized: options.rejectUnauthorized, servername: options.servername };
    const key = [url.protocol, ...Object.values(tls).map((v) => (v === undefined ? '' : String(v)))].join('\u0000');
    if (this.pooled?.key !== key) {
      this.pooled?.agent.destroy();
      const common = { keepAlive: true, maxSockets: 16, timeout: 60_000 };
      this.pooled = { key, agent: url.protocol === 'https:' ? new HttpsAgent({ ...common, ...tls }) : new HttpAgent(common) };
    }
    return this.pooled.agent;
  }
}
