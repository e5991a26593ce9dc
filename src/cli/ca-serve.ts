import type { Command } from 'commander';
import { startAdminServer } from '../admin/admin-server.js';
import { counter, createMetricsRegistry, Gauge } from '../admin/metrics.js';
import { parseDuration } from '../core/duration.js';
import { createRootLogger } from '../core/logger.js';
import { BootstrapTokens } from '../pki/signer/bootstrap-tokens.js';
import { SvidSigner, type SignerAuthentication } from '../pki/signer/svid-signer.js';
import { KubernetesTokenReviewer } from '../pki/signer/token-review.js';
import { UsageError } from './cli-error.js';
import type { CliIo } from './io.js';
import { installProcessGuards } from './process-guards.js';
import { untilSignal } from './signals.js';

interface ServeOptions {
  ca: string;
  cluster: string;
  listen: string;
  admin: string;
  maxTtl: string;
  kubernetesAudience?: string;
  kubernetesServiceAccount?: string[];
  kubeApiServer?: string;
  kubeTokenFile?: string;
  kubeCaFile?: string;
  bootstrapTokens?: string;
  renewal: boolean;
}

function authentication(options: ServeOptions): SignerAuthentication {
  const accounts = options.kubernetesServiceAccount ?? [];
  for (const account of accounts) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(account)) throw new UsageError(`--kubernetes-service-account must be NAMESPACE:NAME, got "${account}"`);
  }
  let kubernetes: SignerAuthentication['kubernetes'];
  if (options.kubernetesAudience !== undefined) {
    if (accounts.length === 0) throw new UsageError('--kubernetes-audience needs --kubernetes-service-account NAMESPACE:NAME (the gateway\'s account)');
    let reviewer: KubernetesTokenReviewer;
    if (options.kubeApiServer !== undefined) {
      if (!options.kubeTokenFile) throw new UsageError('--kube-api-server needs --kube-token-file');
      reviewer = new KubernetesTokenReviewer({ server: options.kubeApiServer, tokenFile: options.kubeTokenFile, caFile: options.kubeCaFile });
    } else {
      reviewer = KubernetesTokenReviewer.inCluster();
    }
    kubernetes = { reviewer, audience: options.kubernetesAudience, serviceAccounts: accounts };
  } else if (accounts.length > 0) {
    throw new UsageError('--kubernetes-service-account needs --kubernetes-audience');
  }
  return { kubernetes, bootstrapTokens: options.bootstrapTokens ? new BootstrapTokens(options.bootstrapTokens) : undefined, renewal: options.renewal };
}

/** `fedgate ca serve`: the cluster's certificate signer, the one process that reads the CA key. */
export function registerCaServeCommand(ca: Command, io: CliIo): void {
  ca.command('serve')
    .description("run the cluster's certificate signer: issues short-lived gateway certificates, so the CA key stays out of the gateway")
    .requiredOption('--ca <dir>', 'the cluster CA directory (tls.crt, tls.key, ca.crt; a mounted secret is fine)')
    .requiredOption('--cluster <name>', 'the cluster whose gateway certificate this signer issues')
    .option('--listen <address>', 'HTTPS listener for gateways', '0.0.0.0:15016')
    .option('--admin <address>', '/healthz /readyz /metrics /config', '0.0.0.0:15017')
    .option('--max-ttl <duration>', 'longest certificate lifetime handed out', '1h')
    .option('--kubernetes-audience <audience>', 'accept projected ServiceAccount tokens bound to this audience (checked with TokenReview)')
    .option('--kubernetes-service-account <namespace:name...>', "the gateway's ServiceAccount(s) allowed to obtain its certificate")
    .option('--kube-api-server <url>', 'API server for TokenReview (default: the pod\'s own cluster)')
    .option('--kube-token-file <file>', "the signer's credential for the API server (with --kube-api-server)")
    .option('--kube-ca-file <file>', "the API server's CA (with --kube-api-server)")
    .option('--bootstrap-tokens <dir>', 'accept one-time tokens from this directory ("fedgate ca signer-token create")')
    .option('--no-renewal', 'do not renew on the current certificate (mutual TLS); callers must show a token every time')
    .action(async (options: ServeOptions) => {
      let maxTtlMs: number;
      try {
        maxTtlMs = parseDuration(options.maxTtl);
      } catch (error) {
        throw new UsageError(`--max-ttl: ${(error as Error).message}`);
      }
      const auth = authentication(options);
      const log = createRootLogger({ name: 'fedgate-signer', base: { cluster: options.cluster } });
      installProcessGuards(log);
      const registry = createMetricsRegistry({ component: 'signer', cluster: options.cluster });
      const requests = counter(registry, 'fedgate_signer_requests_total', 'Certificate requests by outcome and how the caller authenticated', ['result', 'method'] as const);
      const signer = new SvidSigner({ pkiDir: options.ca, cluster: options.cluster, listen: options.listen, maxTtlMs, auth, log, onOutcome: ({ result, method }) => requests.inc({ result, method }) });
      new Gauge({
        name: 'fedgate_signer_ca_not_after_seconds',
        help: 'When the signing CA expires (Unix time)',
        registers: [registry],
        collect() {
          this.set(signer.caNotAfter.getTime() / 1000);
        },
      });
      await signer.start();
      const admin = await startAdminServer({ listen: options.admin, registry, log: log.child({ component: 'admin' }), readiness: () => signer.readiness(), config: () => signer.describe() });
      const pruning = auth.bootstrapTokens
        ? setInterval(() => {
            const removed = auth.bootstrapTokens?.prune() ?? 0;
            if (removed > 0) log.info({ removed }, 'expired bootstrap tokens removed');
          }, 60_000)
        : undefined;
      pruning?.unref();
      io.err(`fedgate signer for ${signer.gatewayId.toString()}: https on :${signer.port}, admin http://${options.admin.replace(/:\d+$/, `:${admin.port}`)}`);
      const signal = await untilSignal();
      log.info({ signal }, 'shutting down');
      clearInterval(pruning);
      await signer.stop();
      await admin.close();
      log.flush();
    });
}
