import { ErrorCodes, errorMessage, FedgateError, InputError, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Counter, Gauge } from '../../admin/metrics.js';
import { serviceKey, type ClusterRecord, type ExportRecord } from '../../model/catalog.js';
import type { SpiffeId } from '../../model/spiffe-id.js';
import { bundleFromProto, exportFromProto } from '../../proto/convert.js';
import type { ExportSpec, ExportVerdict, Hello, SyncDown, SyncUp } from '../../proto/gen/fedgate.js';
import { GrpcStatus, peerCertificateOf, type ServerDuplexStream } from '../../proto/grpc-transport.js';
import type { PeerVerifier } from '../../pki/peer-verifier.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import type { Store } from '../../store/store.js';
import type { CatalogState, Touched } from '../catalog-state.js';
import { heartbeatInterval } from '../gateway-status.js';
import { GatewaySession } from './gateway-session.js';

const HELLO_TIMEOUT_MS = 10_000;
const STATUS_WRITE_INTERVAL_MS = 500;
/** Hello.instance: a pod name or host name with a pid and a random suffix fits easily. */
const INSTANCE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface SyncServiceOptions {
  catalog: CatalogState;
  store: Store;
  verifier: PeerVerifier;
  log: Logger;
  replicaId: string;
  leaseTtlMs: number;
  maxExportsPerCluster: number;
  /** False while the controller cannot serve a consistent catalog (store epoch being rebuilt). */
  serving: () => boolean;
  metrics: { sessions: Gauge<string>; rejected: Counter<'reason'> };
  /** Federation-wide settings sent first on every stream. */
  settings: { federation: string; defaultsJson: string };
  /** API addresses of the live controller replicas, this one first; sent with the settings. */
  controllerAddresses: () => string[];
}

/**
 * The Sync RPC: one bidirectional stream per gateway instance. Up: the gateway's exports, ACK/NACK
 * of each revision, bundle updates. Down: a snapshot or a delta from the revision the gateway holds.
 *
 * A cluster's gateway may run as several instances (replicas of its Deployment), each with its own
 * stream, told apart by Hello.instance. Whatever concerns a cluster (its catalog updates, export
 * verdicts, its removal) therefore concerns every session of that cluster.
 */
export class SyncService {
  /** Open streams by cluster, then by instance. */
  private readonly sessions = new Map<string, Map<string, GatewaySession>>();

  constructor(private readonly options: SyncServiceOptions) {}

  /** This replica's open streams, by cluster, then by instance. */
  get connected(): ReadonlyMap<string, ReadonlyMap<string, GatewaySession>> {
    return this.sessions;
  }

  private all(): GatewaySession[] {
    return [...this.sessions.values()].flatMap((byInstance) => [...byInstance.values()]);
  }

  private sessionsOf(cluster: string): GatewaySession[] {
    return [...(this.sessions.get(cluster)?.values() ?? [])];
  }

  /** Registers a session; returns the one it replaces (the same instance's older stream). */
  private add(session: GatewaySession): GatewaySession | undefined {
    let byInstance = this.sessions.get(session.cluster);
    if (!byInstance) {
      byInstance = new Map();
      this.sessions.set(session.cluster, byInstance);
    }
    const previous = byInstance.get(session.instance);
    byInstance.set(session.instance, session);
    this.updateSessionGauge();
    return previous;
  }

  /** Forgets a session unless a newer stream of its instance took its place; true when it did. */
  private remove(session: GatewaySession): boolean {
    const byInstance = this.sessions.get(session.cluster);
    if (byInstance?.get(session.instance) !== session) return false;
    byInstance.delete(session.instance);
    if (byInstance.size === 0) this.sessions.delete(session.cluster);
    this.updateSessionGauge();
    return true;
  }

  private updateSessionGauge(): void {
    let count = 0;
    for (const byInstance of this.sessions.values()) count += byInstance.size;
    this.options.metrics.sessions.set(count);
  }

  handle(call: ServerDuplexStream<SyncUp, SyncDown>): void {
    const { log } = this.options;
    let cluster: string;
    try {
      cluster = this.authenticate(call);
    } catch (error) {
      const code = error instanceof FedgateError && error.code === ErrorCodes.PERMISSION_DENIED ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.UNAUTHENTICATED;
      this.options.metrics.rejected.inc({ reason: 'unauthenticated' });
      log.warn({ peer: call.getPeer(), err: errorMessage(error) }, 'sync stream refused');
      call.emit('error', Object.assign(new Error(errorMessage(error)), { code, details: errorMessage(error) }));
      return;
    }
    // Until Hello names the instance, the stream is only known by its cluster.
    let sessionLog = log.child({ cluster });
    let session: GatewaySession | undefined;
    let chain = Promise.resolve();
    const helloTimer = setTimeout(() => {
      if (!session) call.emit('error', Object.assign(new Error('no Hello within 10s'), { code: GrpcStatus.DEADLINE_EXCEEDED, details: 'no Hello within 10s' }));
    }, HELLO_TIMEOUT_MS);
    let heartbeatTimer: NodeJS.Timeout | undefined;
    let statusTimer: NodeJS.Timeout | undefined;
    let statusDirty = false;

    const writeStatus = (connected: boolean): void => {
      if (!session) return;
      void this.options.store
        .putGatewayStatus({
          cluster,
          instance: session.instance,
          connected,
          replica: this.options.replicaId,
          lastSeen: session.lastSeen,
          appliedRevision: session.ackedRevision,
          appliedPolicyRevision: session.ackedPolicyRevision,
          lastNack: session.lastNack,
          lastNackRevision: session.lastNackRevision,
          exports: this.options.catalog.exportsOf(cluster).length,
          connectedAt: session.connectedAt,
          version: session.version,
        })
        .catch((error: unknown) => sessionLog.debug({ err: errorMessage(error) }, 'could not record gateway status'));
    };
    // While the stream is open the gateway counts as seen (gRPC keepalive watches the connection):
    // the status is refreshed so other replicas can tell it from one left behind by a replica that
    // died, and the cluster's lease is renewed (by any of its instances).
    const heartbeat = (): void => {
      if (!session || session.isClosed) return;
      session.lastSeen = Date.now();
      writeStatus(true);
      void this.renewLease(cluster, sessionLog);
    };
    const statusSoon = (): void => {
      statusDirty = true;
      statusTimer ??= setTimeout(() => {
        statusTimer = undefined;
        if (statusDirty) {
          statusDirty = false;
          writeStatus(true);
        }
      }, STATUS_WRITE_INTERVAL_MS);
    };

    const cleanup = (): void => {
      clearTimeout(helloTimer);
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      if (statusTimer) clearTimeout(statusTimer);
      if (session) {
        session.markClosed();
        // A stream replaced by a newer one of the same instance leaves the status to its successor.
        if (this.remove(session)) {
          session.lastSeen = Date.now();
          writeStatus(false);
          sessionLog.info('gateway disconnected');
        }
      }
    };

    const process = async (message: SyncUp): Promise<void> => {
      const msg = message.msg;
      if (!msg) return;
      if (!session) {
        if (msg.$case !== 'hello') {
          call.emit('error', Object.assign(new Error('the first message must be Hello'), { code: GrpcStatus.FAILED_PRECONDITION, details: 'the first message must be Hello' }));
          return;
        }
        clearTimeout(helloTimer);
        sessionLog = sessionLog.child({ instance: msg.value.instance.slice(0, 128) });
        // The session is known to this stream before Hello's store work starts: a stream that ends
        // meanwhile is cleaned up with its session, instead of leaving it registered (renewing the
        // cluster's lease for a gateway that is gone).
        session = this.admit(call, cluster, msg.value, sessionLog);
        if (!session) return;
        try {
          await this.greet(session, msg.value, sessionLog);
        } catch (error) {
          sessionLog.warn({ err: errorMessage(error) }, 'could not admit the gateway; it will reconnect');
          session.close(GrpcStatus.UNAVAILABLE, `the controller could not admit this gateway: ${errorMessage(error)}`);
          return;
        }
        if (session.isClosed) return;
        writeStatus(true);
        heartbeatTimer = setInterval(heartbeat, heartbeatInterval(this.options.leaseTtlMs));
        return;
      }
      session.lastSeen = Date.now();
      switch (msg.$case) {
        case 'hello':
          session.reject('Hello may only be sent once per stream');
          return;
        case 'exports':
          await this.writeExports(session, msg.value.upserts, msg.value.deletes, msg.value.full, sessionLog);
          return;
        case 'ack':
          session.ackedRevision = Math.max(session.ackedRevision, msg.value.revision);
          session.ackedPolicyRevision = Math.max(session.ackedPolicyRevision, msg.value.policyRevision);
          // A refused policy set stays reported until a later set is in force on the gateway.
          if (!session.lastNack.startsWith('policy:') || session.ackedPolicyRevision >= session.lastNackRevision) session.lastNack = '';
          statusSoon();
          return;
        case 'nack':
          // A refused policy set is re-sent after every ACK: only its first arrival is news.
          if (msg.value.reason.startsWith('policy:') && msg.value.reason === session.lastNack) return;
          session.lastNack = msg.value.reason;
          session.lastNackRevision = msg.value.reason.startsWith('policy:') ? msg.value.policyRevision : msg.value.revision;
          sessionLog.warn({ revision: msg.value.revision, policyRevision: msg.value.policyRevision, reason: msg.value.reason }, 'gateway rejected an update');
          if (msg.value.reason.startsWith('resync:')) session.startWithSnapshot();
          statusSoon();
          return;
        case 'health':
          return;
        case 'bundle':
          await this.updateBundle(session, msg.value, sessionLog);
          return;
      }
    };

    call.on('data', (message: SyncUp) => {
      chain = chain.then(() => process(message)).catch((error: unknown) => {
        sessionLog.warn({ err: errorMessage(error) }, 'sync message failed');
        session?.reject(errorMessage(error));
      });
    });
    call.on('end', () => {
      cleanup();
      call.end();
    });
    call.on('cancelled', cleanup);
    call.on('error', cleanup);
    call.on('close', cleanup);
  }

  /** Pushes a revision the catalog just applied to every session. */
  broadcast(revision: number, touched: Touched): void {
    for (const session of this.all()) session.changed(revision, touched);
    if (touched.services.size > 0) this.sendVerdicts(touched);
    for (const name of touched.clusters) {
      if (this.options.catalog.clusters.has(name)) continue;
      for (const session of this.sessionsOf(name)) session.close(GrpcStatus.PERMISSION_DENIED, `cluster "${name}" was removed from the federation`);
    }
  }

  private settingsMessage(): { federation: string; defaultsJson: string; controllerAddresses: string[] } {
    return { ...this.options.settings, controllerAddresses: this.options.controllerAddresses() };
  }

  /** The set of live controller replicas changed: every gateway learns where it can fail over to. */
  replicasChanged(): void {
    const settings = this.settingsMessage();
    for (const session of this.all()) session.sendSettings(settings);
  }

  /** The store lost its state and was rebuilt: every gateway gets a snapshot and re-sends its exports. */
  resyncAll(reason: string): void {
    for (const session of this.all()) {
      session.resync();
      session.requestExports(reason);
    }
  }

  /** The store is reachable again: gateways whose export writes failed send them again. */
  storeRecovered(): void {
    for (const session of this.all()) {
      if (session.exportsDirty) {
        session.exportsDirty = false;
        session.requestExports('the store was unavailable when your exports arrived');
      }
    }
  }

  closeAll(): void {
    for (const session of this.all()) session.close(GrpcStatus.UNAVAILABLE, 'controller shutting down');
    this.sessions.clear();
    this.updateSessionGauge();
  }

  private authenticate(call: ServerDuplexStream<SyncUp, SyncDown>): string {
    const certificate = peerCertificateOf(call);
    if (!certificate?.raw) throw new FedgateError(ErrorCodes.PEER_NO_CERTIFICATE, 'a gateway certificate is required');
    const id: SpiffeId = this.options.verifier.verifyPeerCertificate(certificate);
    const cluster = id.gatewayCluster;
    if (!cluster) throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `${id.toString()} is not a gateway identity (spiffe://<trust-domain>/fedgate/gateway/<cluster>)`);
    const record = this.options.catalog.clusters.get(cluster);
    if (!record) throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `cluster "${cluster}" is not a member of the federation`);
    if (record.trustDomain !== id.trustDomain) {
      throw new FedgateError(ErrorCodes.PERMISSION_DENIED, `${id.toString()} is not of cluster ${cluster}'s trust domain ${record.trustDomain}`);
    }
    return cluster;
  }

  /** Checks a Hello and registers the stream's session; synchronous, so the stream knows its session at once. */
  private admit(call: ServerDuplexStream<SyncUp, SyncDown>, cluster: string, hello: Hello, log: Logger): GatewaySession | undefined {
    const { catalog } = this.options;
    if (hello.cluster !== cluster) {
      const message = `this stream is authenticated as the gateway of "${cluster}"; it may not speak for "${hello.cluster}"`;
      this.options.metrics.rejected.inc({ reason: 'wrong-cluster' });
      call.emit('error', Object.assign(new Error(message), { code: GrpcStatus.PERMISSION_DENIED, details: message }));
      return undefined;
    }
    if (hello.instance !== '' && !INSTANCE_PATTERN.test(hello.instance)) {
      const message = `Hello.instance ${JSON.stringify(hello.instance.slice(0, 64))} is not an instance id: up to 128 letters, digits, ".", "_", ":" and "-", starting with a letter or digit`;
      this.options.metrics.rejected.inc({ reason: 'bad-instance' });
      call.emit('error', Object.assign(new Error(message), { code: GrpcStatus.INVALID_ARGUMENT, details: message }));
      return undefined;
    }
    const session = new GatewaySession(cluster, hello.instance, hello.version, call, catalog, log);
    // Only the same instance is replaced (it reconnected while its old stream still looked open);
    // other instances of the cluster keep their streams.
    const previous = this.add(session);
    if (previous) {
      previous.close(GrpcStatus.ABORTED, 'replaced by a newer stream from the same gateway instance');
      log.info('gateway instance reconnected; its previous stream was closed');
    }
    session.sendSettings(this.settingsMessage());
    log.info({ epoch: hello.epoch, revision: hello.revision, exports: hello.exports.length, instances: this.sessionsOf(cluster).length }, 'gateway connected');
    return session;
  }

  /** What Hello needs from the store: the catalog to send, the cluster's lease and state, its exports. */
  private async greet(session: GatewaySession, hello: Hello, log: Logger): Promise<void> {
    const { catalog } = this.options;
    const cluster = session.cluster;

    // What the gateway must be told: a delta when it holds this epoch and the log still reaches
    // its revision, else a snapshot.
    if (hello.epoch !== '' && hello.epoch === catalog.epoch) {
      session.acknowledgeHeld(hello.revision, hello.policyRevision, hello.policyRefusal, hello.policyRefusalRevision);
    }
    if (!this.options.serving()) {
      session.startWithSnapshot();
    } else if (hello.epoch !== '' && hello.epoch === catalog.epoch) {
      if (hello.revision >= catalog.revision) {
        // The gateway is level with (or, having come from a replica further along, ahead of) this
        // replica: nothing to send until this replica's catalog moves past its revision.
        session.resume(hello.revision, catalog.touchedBy([]));
      } else {
        const changes = await this.options.store.changesSince(hello.revision).catch(() => 'snapshot-required' as const);
        if (changes === 'snapshot-required') session.startWithSnapshot();
        else session.resume(hello.revision, catalog.touchedBy(changes.filter((c) => c.revision <= catalog.revision)));
      }
    } else {
      session.startWithSnapshot();
    }

    await this.renewLease(cluster, log);
    const record = catalog.clusters.get(cluster) as ClusterRecord;
    if (record.state === 'unreachable') {
      await this.options.store
        .setClusterState(cluster, 'active', { by: this.options.replicaId, reason: 'gateway reconnected', at: Date.now() })
        .catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'could not mark cluster active'));
    }
    await this.writeExports(session, hello.exports, [], true, log);
    this.sendCurrentVerdicts(session);
  }

  private async renewLease(cluster: string, log: Logger): Promise<void> {
    try {
      await this.options.store.renewLease(cluster, this.options.replicaId, Date.now() + this.options.leaseTtlMs);
    } catch (error) {
      log.debug({ err: errorMessage(error) }, 'lease renewal failed');
    }
  }

  /**
   * Exports belong to the cluster, not to an instance: every instance sends its full export set on
   * Hello (and after ResendExports) and replaces the cluster's set with it. The instances of one
   * cluster must therefore share their discovery configuration, or each would replace the others'
   * exports with its own.
   */
  private async writeExports(session: GatewaySession, upserts: ExportSpec[], deletes: string[], full: boolean, log: Logger): Promise<void> {
    const { catalog, store } = this.options;
    const cluster = session.cluster;
    const now = Date.now();
    const records: ExportRecord[] = [];
    const invalid: ExportVerdict[] = [];
    upserts.forEach((spec, index) => {
      try {
        const record = exportFromProto(spec, cluster, now, `exports[${index}]`);
        // An export keeps its seniority (MCS conflict rule) even if the gateway forgot when it began.
        const existing = catalog.exports.get(serviceKey(record.namespace, record.name))?.get(cluster);
        if (existing && spec.createdAtMs === 0) record.createdAt = existing.createdAt;
        records.push(record);
      } catch (error) {
        invalid.push({ namespace: spec.namespace, name: spec.name, accepted: false, reason: error instanceof InputError ? error.message : errorMessage(error) });
      }
    });
    const resulting = full ? records.length : new Set([...catalog.exportsOf(cluster).map((e) => serviceKey(e.namespace, e.name)), ...records.map((r) => serviceKey(r.namespace, r.name))].filter((k) => !deletes.includes(k))).size;
    if (resulting > this.options.maxExportsPerCluster) {
      this.options.metrics.rejected.inc({ reason: 'too-many-exports' });
      session.reject(`cluster ${cluster} would export ${resulting} services; the limit is ${this.options.maxExportsPerCluster} (spec.controller.maxExportsPerCluster). The previous exports stay in force.`);
      return;
    }
    if (invalid.length > 0) session.sendVerdicts(invalid);
    try {
      await store.writeExports(cluster, { upserts: records, deletes, replace: full });
    } catch (error) {
      if (error instanceof StoreError && (error.code === ErrorCodes.STORE_UNAVAILABLE || error.code === ErrorCodes.STORE_EPOCH_CHANGED)) {
        session.exportsDirty = true;
        log.warn({ err: errorMessage(error) }, 'store unavailable; the gateway will be asked to re-send its exports');
        return;
      }
      throw error;
    }
  }

  private async updateBundle(session: GatewaySession, bundle: { trustDomain: string; sequence: number; spiffeJson: string }, log: Logger): Promise<void> {
    const record = this.options.catalog.clusters.get(session.cluster);
    if (!record || bundle.trustDomain !== record.trustDomain) {
      session.reject(`the gateway of ${session.cluster} may only publish the bundle of ${record?.trustDomain ?? 'its own trust domain'}, not "${bundle.trustDomain}"`);
      return;
    }
    try {
      TrustBundle.fromSpiffeJson(bundle.trustDomain, bundle.spiffeJson).withSequence(bundle.sequence);
    } catch (error) {
      session.reject(`bundle rejected: ${errorMessage(error)}`);
      return;
    }
    const result = await this.options.store.putBundle(bundleFromProto(bundle));
    if ('stale' in result) {
      if (bundle.sequence < result.current) session.reject(`bundle sequence ${bundle.sequence} is older than the stored ${result.current}`);
      return;
    }
    log.info({ trustDomain: bundle.trustDomain, sequence: bundle.sequence, revision: result.revision }, 'trust bundle updated');
  }

  /**
   * Tells exporting gateways whether their exports of the touched services are accepted or in
   * conflict. Only verdicts that changed are sent: a change to one service must not cost every
   * exporter a message listing all its exports.
   */
  private sendVerdicts(touched: Touched): void {
    const { catalog } = this.options;
    for (const key of touched.services) {
      const byCluster = catalog.exports.get(key);
      for (const cluster of new Set([...(byCluster?.keys() ?? []), ...touched.exporters])) {
        const sessions = this.sessionsOf(cluster);
        if (sessions.length === 0) continue;
        const record = byCluster?.get(cluster);
        if (!record) {
          for (const session of sessions) session.forgetVerdict(key);
          continue;
        }
        const verdict = this.verdictOf(record);
        for (const session of sessions) session.queueVerdict(key, verdict);
      }
    }
    for (const session of this.all()) session.flushVerdicts();
  }

  /**
   * A new stream learns the verdicts on its cluster's exports as they stand: when they are already
   * stored (another instance of the cluster, or this one before a reconnect) its Hello changes
   * nothing, so no revision would bring them.
   */
  private sendCurrentVerdicts(session: GatewaySession): void {
    for (const record of this.options.catalog.exportsOf(session.cluster)) session.queueVerdict(serviceKey(record.namespace, record.name), this.verdictOf(record));
    session.flushVerdicts();
  }

  private verdictOf(record: ExportRecord): ExportVerdict {
    const conflict = this.options.catalog.mergedService(serviceKey(record.namespace, record.name))?.conflicts.find((c) => c.cluster === record.cluster);
    return { namespace: record.namespace, name: record.name, accepted: !conflict, reason: conflict?.reason ?? '' };
  }
}
