import { ErrorCodes, errorMessage, FedgateError, formatIssue, PolicyError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Counter, Gauge } from '../../admin/metrics.js';
import { createJoinToken } from '../../model/join-token.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { clusterToProto, policyToProto } from '../../proto/convert.js';
import type {
  AdminResponse,
  BlackholeRequest,
  ClusterRequest,
  DrillEvent,
  CreateTokenRequest,
  CreateTokenResponse,
  DeletePolicyRequest,
  ListPoliciesRequest,
  ListPoliciesResponse,
  PutPoliciesRequest,
  PutPoliciesResponse,
  StatusRequest,
  StatusResponse,
} from '../../proto/gen/fedgate.js';
import { peerCertificateOf, type sendUnaryData, type ServerUnaryCall } from '../../proto/grpc-transport.js';
import type { PeerVerifier } from '../../pki/peer-verifier.js';
import type { PolicyInput } from '../../policy/compile.js';
import { recordInputs, validatePolicySet } from '../../policy/policy-set.js';
import type { Store } from '../../store/store.js';
import type { CatalogState } from '../catalog-state.js';
import type { SyncService } from '../sync/sync-service.js';
import { toGrpcError } from '../../proto/grpc-errors.js';
import { summarizeCluster } from '../gateway-status.js';

/** Checks policy documents; the controller stores only sets that pass, every problem reported at once. */

export interface AdminServiceOptions {
  store: Store;
  catalog: CatalogState;
  sync: SyncService;
  verifier: PeerVerifier;
  log: Logger;
  federation: string;
  federationTrustDomain: string;
  replicaId: string;
  /** Known once the listeners are bound. */
  joinAddress: () => string;
  caAddress: () => string;
  caHash: string;
  defaultTokenTtlMs: number;
  /** A stored instance status not refreshed for this long is stale, not connected. */
  leaseTtlMs: number;
  /** Ids of the controller replicas alive now (the replica registry): only their records are believed. */
  liveReplicas: () => Promise<ReadonlySet<string>>;
  storeReady: () => boolean;
  drillMetrics: DrillMetrics;
}

/** Drills report to the controller so that a scheduled drill is visible where the federation is watched. */
export interface DrillMetrics {
  runs: Counter<'service' | 'mode' | 'outcome'>;
  running: Gauge<'service' | 'mode'>;
  lastFailoverSeconds: Gauge<'service' | 'mode'>;
  lastErrors: Gauge<'service' | 'mode'>;
  lastFinished: Gauge<'service' | 'mode'>;
}

const SERVICE_KEY = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;

/** Status and administration, for operators holding an admin identity of the controller's CA. */
export class AdminService {
  constructor(private readonly options: AdminServiceOptions) {}

  private admin(call: ServerUnaryCall<unknown, unknown>): string {
    const certificate = peerCertificateOf(call);
    if (!certificate?.raw) throw new FedgateError(ErrorCodes.PEER_NO_CERTIFICATE, 'an admin certificate is required');
    const id = this.options.verifier.verifyPeerCertificate(certificate);
    const segments = id.segments;
    if (!id.memberOf(this.options.federationTrustDomain) || segments[0] !== 'fedgate' || segments[1] !== 'admin' || segments.length !== 3) {
      throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `${id.toString()} is not an admin identity (spiffe://${this.options.federationTrustDomain}/fedgate/admin/<name>)`);
    }
    return segments[2] as string;
  }

  private unary<Req, Res>(name: string, run: (request: Req, actor: string) => Promise<Res>): Unary<Req, Res> {
    return (call, callback) => {
      let actor: string;
      try {
        actor = this.admin(call as ServerUnaryCall<unknown, unknown>);
      } catch (error) {
        this.options.log.warn({ rpc: name, peer: call.getPeer(), err: errorMessage(error) }, 'admin call refused');
        callback(toGrpcError(error));
        return;
      }
      run(call.request, actor).then(
        (response) => callback(null, response),
        (error: unknown) => {
          this.options.log.warn({ rpc: name, actor, err: errorMessage(error) }, 'admin call failed');
          callback(toGrpcError(error));
        },
      );
    };
  }

  readonly handlers = {
    status: this.unary<StatusRequest, StatusResponse>('Status', async () => this.status()),
    createToken: this.unary<CreateTokenRequest, CreateTokenResponse>('CreateToken', async (request, actor) => this.createToken(request, actor)),
    removeCluster: this.unary<ClusterRequest, AdminResponse>('RemoveCluster', async (request, actor) => this.removeCluster(request, actor)),
    drainCluster: this.unary<ClusterRequest, AdminResponse>('DrainCluster', async (request, actor) => this.setDrain(request, actor, true)),
    undrainCluster: this.unary<ClusterRequest, AdminResponse>('UndrainCluster', async (request, actor) => this.setDrain(request, actor, false)),
    putPolicies: this.unary<PutPoliciesRequest, PutPoliciesResponse>('PutPolicies', async (request, actor) => this.putPolicies(request, actor)),
    deletePolicy: this.unary<DeletePolicyRequest, AdminResponse>('DeletePolicy', async (request, actor) => this.deletePolicy(request, actor)),
    listPolicies: this.unary<ListPoliciesRequest, ListPoliciesResponse>('ListPolicies', async () => this.listPolicies()),
    blackholeService: this.unary<BlackholeRequest, AdminResponse>('BlackholeService', async (request, actor) => this.blackhole(request, actor)),
    recordDrill: this.unary<DrillEvent, AdminResponse>('RecordDrill', async (request, actor) => this.recordDrill(request, actor)),
  };

  /**
   * The cluster's gateway stops answering for one service (a drill's "blackhole"): recorded on the
   * cluster in the catalog, so it reaches the gateway through its Sync stream, survives a reconnect
   * or a controller failover, and is undone the same way.
   */
  private async blackhole(request: BlackholeRequest, actor: string): Promise<AdminResponse> {
    if (!SERVICE_KEY.test(request.service)) throw new FedgateError(ErrorCodes.USAGE, `service must be namespace/name (got "${request.service}")`);
    const current = await this.options.store.getCluster(request.cluster);
    if (!current) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no cluster "${request.cluster}"`);
    const services = new Set(current.blackholed ?? []);
    const had = services.has(request.service);
    if (had === request.enabled) {
      return { revision: this.options.catalog.revision, message: `${request.service} at ${request.cluster} was already ${request.enabled ? 'blackholed' : 'answering'}` };
    }
    if (request.enabled) services.add(request.service);
    else services.delete(request.service);
    const { blackholed: _previous, ...rest } = current;
    const revision = await this.options.store.putCluster(services.size > 0 ? { ...rest, blackholed: [...services].sort() } : rest);
    const reason = request.reason || (request.enabled ? 'drill' : 'drill ended');
    await this.options.store.appendAudit({ at: Date.now(), actor, action: request.enabled ? 'blackhole' : 'unblackhole', target: `${request.cluster} ${request.service}`, detail: reason });
    this.options.log.warn({ cluster: request.cluster, service: request.service, actor, reason, revision }, request.enabled ? 'service blackholed at cluster' : 'service blackhole lifted');
    return { revision, message: `${request.service} at ${request.cluster} ${request.enabled ? 'blackholed' : 'answering again'} at revision ${revision}` };
  }

  private async recordDrill(event: DrillEvent, actor: string): Promise<AdminResponse> {
    if (!SERVICE_KEY.test(event.service)) throw new FedgateError(ErrorCodes.USAGE, `service must be namespace/name (got "${event.service}")`);
    if (!['drain', 'blackhole', 'kill'].includes(event.mode)) throw new FedgateError(ErrorCodes.USAGE, `mode must be drain, blackhole or kill (got "${event.mode}")`);
    const labels = { service: event.service, mode: event.mode };
    const metrics = this.options.drillMetrics;
    const at = Date.now();
    if (event.phase === 'started') {
      metrics.running.set(labels, 1);
      await this.options.store.appendAudit({ at, actor, action: 'drill-start', target: event.service, detail: `${event.mode} ${event.failedCluster}, traffic from ${event.fromCluster}` });
    } else if (event.phase === 'finished') {
      if (!['passed', 'failed', 'aborted'].includes(event.outcome)) throw new FedgateError(ErrorCodes.USAGE, `outcome must be passed, failed or aborted (got "${event.outcome}")`);
      metrics.running.set(labels, 0);
      metrics.runs.inc({ ...labels, outcome: event.outcome });
      metrics.lastFailoverSeconds.set(labels, event.failoverSeconds);
      metrics.lastErrors.set(labels, event.errors);
      metrics.lastFinished.set(labels, at / 1000);
      const failover = event.failoverSeconds >= 0 ? `full failover ${event.failoverSeconds.toFixed(3)}s` : 'never fully failed over';
      await this.options.store.appendAudit({ at, actor, action: 'drill-end', target: event.service, detail: `${event.mode} ${event.failedCluster}: ${event.outcome}, ${event.errors} errors of ${event.requests}, ${failover}` });
    } else {
      throw new FedgateError(ErrorCodes.USAGE, `phase must be started or finished (got "${event.phase}")`);
    }
    this.options.log.info({ ...labels, phase: event.phase, outcome: event.outcome || undefined, failedCluster: event.failedCluster, actor }, `drill ${event.phase}`);
    return { revision: this.options.catalog.revision, message: `drill ${event.phase} recorded` };
  }

  private async status(): Promise<StatusResponse> {
    const { catalog, store } = this.options;
    const statuses = await store.listGatewayStatus().catch(() => []);
    const liveReplicas = await this.options.liveReplicas();
    const audit = await store.listAudit(20).catch(() => []);
    const live = this.options.sync.connected;
    const now = Date.now();
    return {
      federation: this.options.federation,
      epoch: catalog.epoch,
      revision: catalog.revision,
      policyRevision: catalog.policyRevision,
      storeReady: this.options.storeReady(),
      replica: this.options.replicaId,
      clusters: [...catalog.clusters.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((record) => {
          const summary = summarizeCluster(record.name, statuses, live.get(record.name), this.options.replicaId, now, this.options.leaseTtlMs, liveReplicas);
          return {
            info: clusterToProto(record),
            ...summary,
            exports: catalog.exportsOf(record.name).length,
          };
        }),
      services: [...catalog.exports.keys()].sort().map((key) => {
        const merged = catalog.mergedService(key);
        const exporters = merged?.exporters ?? [];
        return {
          namespace: merged?.namespace ?? key.split('/')[0] ?? '',
          name: merged?.name ?? key.split('/')[1] ?? '',
          clusters: exporters.map((e) => e.cluster),
          readyEndpoints: exporters.reduce((sum, e) => sum + e.readyEndpoints, 0),
          totalEndpoints: exporters.reduce((sum, e) => sum + e.totalEndpoints, 0),
          conflicts: merged?.conflicts ?? [],
          ports: merged?.ports ?? [],
        };
      }),
      audit: audit.map((a) => ({ atMs: a.at, actor: a.actor, action: a.action, target: a.target, detail: a.detail })),
    };
  }

  private async createToken(request: CreateTokenRequest, actor: string): Promise<CreateTokenResponse> {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(request.cluster)) {
      throw new FedgateError(ErrorCodes.USAGE, `cluster name "${request.cluster}" is not a DNS label`);
    }
    if (this.options.catalog.clusters.has(request.cluster)) {
      throw new FedgateError(ErrorCodes.CLUSTER_EXISTS, `cluster "${request.cluster}" is already a member; remove it first ("fedgate cluster remove ${request.cluster}") to re-join it`);
    }
    const ttl = request.ttlMs > 0 ? request.ttlMs : this.options.defaultTokenTtlMs;
    if (ttl > 7 * 86_400_000) throw new FedgateError(ErrorCodes.USAGE, 'join tokens live at most 7 days');
    const now = Date.now();
    const expiresAt = now + ttl;
    const { token, secretHash } = createJoinToken({ cluster: request.cluster, joinAddress: this.options.joinAddress(), caAddress: this.options.caAddress(), caHash: this.options.caHash, expiresAt });
    // Kept a day past expiry so a late or replayed use is told "expired"/"used", not "unknown".
    await this.options.store.putToken(secretHash, { cluster: request.cluster, expiresAt, createdBy: actor, createdAt: now }, ttl + 86_400_000);
    await this.options.store.appendAudit({ at: now, actor, action: 'token-create', target: request.cluster, detail: `expires ${new Date(expiresAt).toISOString()}` });
    this.options.log.info({ cluster: request.cluster, actor, expiresAt: new Date(expiresAt).toISOString() }, 'join token created');
    return { token, expiresAtMs: expiresAt };
  }

  private async removeCluster(request: ClusterRequest, actor: string): Promise<AdminResponse> {
    const revision = await this.options.store.deleteCluster(request.cluster);
    if (revision === undefined) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no cluster "${request.cluster}"`);
    await this.options.store.appendAudit({ at: Date.now(), actor, action: 'remove', target: request.cluster, detail: request.reason });
    this.options.log.info({ cluster: request.cluster, actor, reason: request.reason, revision }, 'cluster removed');
    return { revision, message: `cluster ${request.cluster} removed; its bundle leaves every gateway at revision ${revision}` };
  }

  private async setDrain(request: ClusterRequest, actor: string, drain: boolean): Promise<AdminResponse> {
    const current = this.options.catalog.clusters.get(request.cluster) ?? (await this.options.store.getCluster(request.cluster));
    if (!current) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no cluster "${request.cluster}"`);
    const state = drain ? 'draining' : 'active';
    const reason = request.reason || (drain ? 'drained by operator' : 'undrained by operator');
    const revision = await this.options.store.setClusterState(request.cluster, state, { by: actor, reason, at: Date.now() });
    await this.options.store.appendAudit({ at: Date.now(), actor, action: drain ? 'drain' : 'undrain', target: request.cluster, detail: reason });
    this.options.log.info({ cluster: request.cluster, actor, reason, revision }, drain ? 'cluster drained' : 'cluster undrained');
    return { revision: revision ?? this.options.catalog.revision, message: revision === undefined ? `cluster ${request.cluster} was already ${state}` : `cluster ${request.cluster} is ${state} at revision ${revision}` };
  }

  /**
   * Validates the documents together with the stored set they join (a VirtualService may need a
   * DestinationRule already stored; a new DestinationRule may break a stored VirtualService), then
   * stores them in one revision.
   */
  private async putPolicies(request: PutPoliciesRequest, actor: string): Promise<PutPoliciesResponse> {
    const documents: PolicyInput[] = request.policies.map((p, index) => {
      const source = request.sources[index] ?? `policies[${index}]`;
      let document: unknown;
      try {
        document = JSON.parse(p.json);
      } catch (error) {
        throw new PolicyError([{ source, path: '', message: `not JSON: ${errorMessage(error)}` }]);
      }
      return { document, source };
    });
    if (documents.length === 0) throw new FedgateError(ErrorCodes.USAGE, 'no policy documents given');
    const incoming = validatePolicySet(documents);
    if (incoming.issues.length > 0) throw new PolicyError(incoming.issues);
    const replaced = new Set(incoming.policies.map((p) => p.key));
    const stored = [...this.options.catalog.policies.values()].filter((p) => !replaced.has(p.key));
    const combined = validatePolicySet([...recordInputs(stored).map((input) => ({ ...input, source: `stored ${input.source}` })), ...documents]);
    if (combined.issues.length > 0) throw new PolicyError(combined.issues);
    const revision = await this.options.store.putPolicies(incoming.policies);
    await this.options.store.appendAudit({ at: Date.now(), actor, action: 'policy-apply', target: incoming.policies.map((p) => p.key).join(','), detail: `revision ${revision}` });
    this.options.log.info({ actor, revision, policies: incoming.policies.length }, 'policies applied');
    return { revision, warnings: combined.warnings.map(formatIssue) };
  }

  private async deletePolicy(request: DeletePolicyRequest, actor: string): Promise<AdminResponse> {
    const revision = await this.options.store.deletePolicy(request.key);
    if (revision === undefined) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no policy "${request.key}"`);
    await this.options.store.appendAudit({ at: Date.now(), actor, action: 'policy-delete', target: request.key, detail: `revision ${revision}` });
    return { revision, message: `policy ${request.key} deleted at revision ${revision}` };
  }

  private async listPolicies(): Promise<ListPoliciesResponse> {
    const policies = [...this.options.catalog.policies.values()].sort((a, b) => a.key.localeCompare(b.key));
    return { policies: policies.map(policyToProto), revision: this.options.catalog.policyRevision };
  }
}

export function adminIdentity(trustDomain: string, name: string): SpiffeId {
  return SpiffeId.admin(trustDomain, name);
}
