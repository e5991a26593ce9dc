import { existsSync, readFileSync } from 'node:fs';
import { Backoff, sleep } from '../../core/backoff.js';
import { errorMessage, FedgateError, isTransient, TokenError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { runResilient } from '../../core/lifecycle.js';
import type { ClusterConfig } from '../../config/cluster-config.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import type { ClusterInfo, ExportVerdict } from '../../proto/gen/fedgate.js';
import type { AppliedPolicies } from './applied-policies.js';
import type { CatalogReplica } from './catalog-replica.js';
import { ControllerClient } from './controller-client.js';
import type { DiscoveryProvider } from '../../discovery/provider.js';
import { discoveryExports } from './export-source.js';
import { joinFederation } from './join-client.js';
import { controllerAddressesOf, MembershipFile, type FederationMembership } from './membership.js';
import type { SettingsStore } from './settings-store.js';

export interface ControllerLinkOptions {
  cluster: ClusterConfig;
  /** The join token when given on the command line; else spec.controller.tokenFile. */
  token?: string;
  info: () => ClusterInfo;
  identity: GatewayIdentity;
  catalog: CatalogReplica;
  /** Where this cluster's exports come from; export verdicts go back to it. */
  discovery: DiscoveryProvider;
  settings: SettingsStore;
  policies: Pick<AppliedPolicies, 'appliedRevision' | 'nack'>;
  instance: string;
  version?: string;
  log: Logger;
}

/**
 * A joined gateway's link to its controller: membership (joining first when there is none), then
 * the Sync stream, kept up with back-off and failed over between the controller replicas the
 * controller announced. A problem only an operator can fix (a damaged membership, a refused
 * token) stops the link and is kept for readiness and /config.
 */
export class ControllerLink {
  private readonly file: MembershipFile;
  private membershipValue: FederationMembership | undefined;
  private client: ControllerClient | undefined;
  private problemValue: string | undefined;
  private verdictsValue: readonly ExportVerdict[] = [];

  constructor(private readonly options: ControllerLinkOptions) {
    this.file = new MembershipFile(options.cluster.stateDir, options.cluster.metadata.name);
  }

  get membership(): FederationMembership | undefined {
    return this.membershipValue;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Why this gateway cannot reach its controller, when only an operator can fix it. */
  get problem(): string | undefined {
    return this.problemValue;
  }

  /** The federation's last word on this cluster's exports (accepted, or in conflict and why). */
  get verdicts(): readonly ExportVerdict[] {
    return this.verdictsValue;
  }

  /** The controller replicas to dial, in order. */
  controllers(): string[] {
    return this.membershipValue ? controllerAddressesOf(this.membershipValue) : [];
  }

  /** Joins if needed (retrying while the controller is unreachable), then keeps the Sync stream up. */
  async run(signal: AbortSignal): Promise<void> {
    const { cluster, log } = this.options;
    try {
      this.membershipValue = this.file.current();
    } catch (error) {
      this.problemValue = errorMessage(error);
      log.error({ err: this.problemValue }, 'membership unusable; serving the persisted catalog, not contacting the controller');
      return;
    }
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
    while (!this.membershipValue && !signal.aborted) {
      const token = this.readToken();
      if (!token) {
        const tokenFile = cluster.spec.controller?.tokenFile;
        this.problemValue = tokenFile
          ? `not a member of a federation and no join token: spec.controller.tokenFile names ${tokenFile}, which does not exist; write the token there ("fedgate token create --cluster ${cluster.metadata.name} --out ${tokenFile}"), or run "fedgate join"`
          : 'not a member of a federation and no join token: set spec.controller.tokenFile, or run "fedgate join"';
        log.error({ stateDir: cluster.stateDir }, this.problemValue);
        return;
      }
      try {
        const membership = await joinFederation({ token, info: this.options.info(), bundle: this.options.identity.ownBundle, log: log.child({ component: 'join' }) });
        this.file.save(membership);
        this.membershipValue = membership;
      } catch (error) {
        if (error instanceof TokenError || (error instanceof FedgateError && !isTransient(error))) {
          this.problemValue = `join failed: ${errorMessage(error)}`;
          log.error({ err: errorMessage(error) }, 'join failed; fix the token and restart the gateway');
          return;
        }
        log.warn({ err: errorMessage(error) }, 'join failed; retrying');
        await sleep(backoff.next(), signal).catch(() => undefined);
      }
    }
    if (!this.membershipValue || signal.aborted) return;
    this.problemValue = undefined;
    this.client = new ControllerClient({
      membership: () => this.currentMembership(),
      info: this.options.info,
      svid: this.options.identity.svid,
      ownBundle: () => this.options.identity.bundleRecord(),
      refreshOwnBundle: () => this.options.identity.refreshOwnBundle(),
      catalog: this.options.catalog,
      exports: discoveryExports(this.options.discovery),
      log: log.child({ component: 'controller-sync' }),
      instance: this.options.instance,
      version: this.options.version,
      onVerdicts: (verdicts) => {
        this.verdictsValue = verdicts;
        this.options.discovery.reportStatus?.(verdicts);
      },
      onSettings: (settings) => {
        this.options.settings.apply(settings.federation, settings.defaultsJson, settings.trustDomainAliasesJson);
        this.rememberControllers(settings.controllerAddresses);
      },
      policyStatus: () => ({ appliedRevision: this.options.policies.appliedRevision, nack: this.options.policies.nack }),
    });
    // Dialling a controller that is down costs a refused connection: a gateway tries again at least
    // once a second (spread by jitter), so status is true again within about a second of any
    // controller restart or failover.
    await runResilient(this.client, signal, { log, backoff: { initialMs: 200, maxMs: 1000, jitter: 0.5 }, healthyAfterMs: 10_000 });
  }

  private readToken(): string | undefined {
    if (this.options.token) return this.options.token.trim();
    const file = this.options.cluster.spec.controller?.tokenFile;
    if (file && existsSync(file)) return readFileSync(file, 'utf8').trim();
    return undefined;
  }

  /**
   * The membership to connect with, re-read when the file changed (`fedgate join --rejoin` while
   * this gateway runs); a file damaged meanwhile keeps the one in memory, and says so.
   */
  private currentMembership(): FederationMembership {
    try {
      const fresh = this.file.current();
      if (fresh) this.membershipValue = fresh;
    } catch (error) {
      this.options.log.error({ err: errorMessage(error) }, 'membership file unreadable; keeping the membership in memory');
    }
    return this.membershipValue as FederationMembership;
  }

  /** Keeps the controller replicas the controller announced, so a restart can reach any of them. */
  private rememberControllers(addresses: readonly string[]): void {
    const membership = this.membershipValue;
    if (!membership || addresses.length === 0) return;
    if ((membership.controllerAddresses ?? []).join(',') === addresses.join(',')) return;
    const next = { ...membership, controllerAddresses: [...addresses] };
    this.membershipValue = next;
    this.options.log.info({ controllers: controllerAddressesOf(next) }, 'controller replicas learned');
    try {
      this.file.save(next);
    } catch (error) {
      this.options.log.error({ err: errorMessage(error) }, 'could not save the controller replicas with the membership');
    }
  }
}

/** This cluster as it presents itself when joining and on every Sync stream. */
export function clusterInfoOf(cluster: ClusterConfig, inboundPort: number): ClusterInfo {
  return {
    name: cluster.metadata.name,
    region: cluster.spec.region,
    zone: cluster.spec.zone,
    trustDomain: cluster.spec.trustDomain,
    // An advertised ":0" (a test's free port) is the port the inbound listener got.
    gatewayAddresses: [...(cluster.spec.gateway.advertise ?? [cluster.spec.gateway.inbound])].map((a) => (inboundPort && a.endsWith(':0') ? a.replace(/:0$/, `:${inboundPort}`) : a)),
    labels: { ...cluster.metadata.labels },
    state: '',
    stateReason: '',
    stateChangedBy: '',
    stateChangedAtMs: 0,
    joinedAtMs: 0,
    blackholedServices: [],
  };
}
