import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/lifecycle.js';
import type { BundleRecord } from '../../model/catalog.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { bundleToProto } from '../../proto/convert.js';
import { CatalogClient, type ClusterInfo, type ExportSpec, type ExportVerdict, type SyncDown, type SyncUp } from '../../proto/gen/fedgate.js';
import { channelCredentials, clientOptions, type ClientDuplexStream } from '../../proto/grpc-transport.js';
import { PeerVerifier } from '../../pki/peer-verifier.js';
import type { RotatingSvid } from '../../pki/rotation.js';
import { checkServer } from '../../pki/tls-options.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import { TrustStore } from '../../pki/trust-store.js';
import type { CatalogReplica } from './catalog-replica.js';
import type { ExportSource } from './export-source.js';
import { controllerAddressesOf, type FederationMembership } from './membership.js';

export interface ControllerClientOptions {
  /** Read at every (re)connect: a re-join or newly announced replicas take effect at once. */
  membership: () => FederationMembership;
  info: () => ClusterInfo;
  svid: RotatingSvid;
  ownBundle: () => BundleRecord;
  /** Re-reads the own bundle; true when it changed (a CA rotation). */
  refreshOwnBundle?: () => boolean;
  catalog: CatalogReplica;
  exports: ExportSource;
  log: Logger;
  /**
   * Which process of the cluster's gateway this is (replicas share the cluster and its SVID); the
   * controller keeps one stream per instance, so replicas do not replace each other's streams.
   */
  instance: string;
  version?: string;
  onVerdicts?: (verdicts: ExportVerdict[]) => void;
  onConnectionChange?: (connected: boolean) => void;
  /** Federation-wide settings, sent first on every stream. */
  onSettings?: (settings: { federation: string; defaultsJson: string; controllerAddresses: string[] }) => void;
  bundleCheckIntervalMs?: number;
  /**
   * The policy set in force and, when the newest one was refused, why. ACKs carry the revision in
   * force; a refusal is NACKed after each ACK (the controller keeps it until a later set applies).
   */
  policyStatus?: () => { appliedRevision: number; nack?: { revision: number; reason: string } };
}

function specKey(spec: ExportSpec): string {
  return `${spec.namespace}/${spec.name}`;
}

/**
 * The gateway's side of Sync. One stream at a time; when it breaks, the caller restarts it with
 * back-off (runResilient) and the new stream resumes from the revision the catalog holds. The data
 * plane never waits on this: the catalog keeps serving whatever was last applied.
 */
export class ControllerClient implements Component {
  readonly name = 'controller-sync';
  private attempt = 0;
  private connectedValue = false;
  private sentExports = new Map<string, string>();

  constructor(private readonly options: ControllerClientOptions) {}

  get connected(): boolean {
    return this.connectedValue;
  }

  private setConnected(value: boolean): void {
    if (this.connectedValue === value) return;
    this.connectedValue = value;
    this.options.onConnectionChange?.(value);
  }

  async start(signal: AbortSignal): Promise<void> {
    const { log } = this.options;
    const membership = this.options.membership();
    // Each attempt dials the next replica: one that died is skipped after a single failed attempt.
    const addresses = controllerAddressesOf(membership);
    const address = addresses[this.attempt % addresses.length] as string;
    this.attempt += 1;
    const controllerId = SpiffeId.parse(membership.controllerSpiffeId);
    const trust = new TrustStore([TrustBundle.fromPem(controllerId.trustDomain, membership.controllerCaPem, 1)]);
    const verifier = new PeerVerifier(trust);
    const svid = this.options.svid.current;
    const client = new CatalogClient(
      address,
      channelCredentials({
        rootsPem: membership.controllerCaPem,
        keyPem: svid.keyPem,
        certPem: svid.chainPem,
        checkServerIdentity: (_host, cert) => checkServer(verifier, cert, (id) => (id.equals(controllerId) ? undefined : `expected ${controllerId.toString()}, got ${id.toString()}`)),
      }),
      clientOptions(),
    );
    const call: ClientDuplexStream<SyncUp, SyncDown> = client.sync();
    const cleanups: Array<() => void> = [];
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (error: Error): void => reject(error);
        call.on('error', fail);
        call.on('end', () => reject(new Error('controller closed the stream')));
        const onAbort = (): void => {
          call.cancel();
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', onAbort));
        // A renewed certificate needs a new connection: the stream is restarted, and resumes.
        cleanups.push(this.options.svid.onRotate(() => reject(new Error('gateway certificate renewed; reconnecting'))));
        cleanups.push(this.options.exports.onChange(() => this.sendExportChanges(call)));
        const bundleTimer = setInterval(() => {
          if (this.options.refreshOwnBundle?.()) call.write({ msg: { $case: 'bundle', value: bundleToProto(this.options.ownBundle()) } });
        }, this.options.bundleCheckIntervalMs ?? 10_000);
        bundleTimer.unref();
        cleanups.push(() => clearInterval(bundleTimer));

        call.on('data', (message: SyncDown) => {
          try {
            this.onMessage(call, message);
          } catch (error) {
            log.error({ err: errorMessage(error) }, 'could not handle a controller message');
          }
        });
        this.sendHello(call, membership);
        log.info({ controller: address, revision: this.options.catalog.data.revision }, 'sync stream opened');
      });
    } finally {
      for (const cleanup of cleanups) cleanup();
      this.setConnected(false);
      call.cancel();
      client.close();
    }
  }

  private sendHello(call: ClientDuplexStream<SyncUp, SyncDown>, membership: FederationMembership): void {
    const held = this.options.catalog.data;
    const policies = this.options.policyStatus?.() ?? { appliedRevision: held.policyRevision };
    const exports = this.options.exports.current();
    this.sentExports = new Map(exports.map((spec) => [specKey(spec), JSON.stringify(spec)]));
    call.write({
      msg: {
        $case: 'hello',
        value: {
          cluster: membership.cluster,
          epoch: held.epoch,
          revision: held.revision,
          exports,
          info: this.options.info(),
          bundle: bundleToProto(this.options.ownBundle()),
          version: this.options.version ?? '',
          instance: this.options.instance,
          policyRevision: policies.appliedRevision,
          policyRefusal: policies.nack?.reason ?? '',
          policyRefusalRevision: policies.nack?.revision ?? 0,
        },
      },
    });
  }

  private sendExportChanges(call: ClientDuplexStream<SyncUp, SyncDown>, full = false): void {
    const current = this.options.exports.current();
    const next = new Map(current.map((spec) => [specKey(spec), JSON.stringify(spec)]));
    const upserts = full ? current : current.filter((spec) => this.sentExports.get(specKey(spec)) !== next.get(specKey(spec)));
    const deletes = full ? [] : [...this.sentExports.keys()].filter((key) => !next.has(key));
    this.sentExports = next;
    if (!full && upserts.length === 0 && deletes.length === 0) return;
    call.write({ msg: { $case: 'exports', value: { upserts, deletes, full } } });
  }

  private onMessage(call: ClientDuplexStream<SyncUp, SyncDown>, message: SyncDown): void {
    const msg = message.msg;
    if (!msg) return;
    // The controller answers every Hello with its settings at once: hearing anything from it means
    // the stream is up, whether or not the catalog has news for this gateway.
    this.setConnected(true);
    const { catalog, log } = this.options;
    switch (msg.$case) {
      case 'update': {
        const update = msg.value;
        const result = catalog.apply(update);
        if (result.status === 'rejected') {
          log.warn({ revision: update.revision, reason: result.reason }, 'catalog update rejected; keeping the last good catalog');
          call.write({ msg: { $case: 'nack', value: { revision: update.revision, reason: result.reason, policyRevision: update.policyRevision } } });
          return;
        }
        const held = catalog.data;
        if (result.status === 'applied') log.debug({ revision: held.revision, snapshot: update.snapshot }, 'catalog applied');
        const policies = this.options.policyStatus?.() ?? { appliedRevision: held.policyRevision };
        call.write({ msg: { $case: 'ack', value: { revision: held.revision, policyRevision: policies.appliedRevision } } });
        if (policies.nack) {
          call.write({ msg: { $case: 'nack', value: { revision: held.revision, reason: `policy: ${policies.nack.reason}`, policyRevision: policies.nack.revision } } });
        }
        return;
      }
      case 'resend':
        log.info({ reason: msg.value.reason }, 'controller asked for the export set again');
        this.sendExportChanges(call, true);
        return;
      case 'verdicts':
        this.options.onVerdicts?.(msg.value.exports);
        for (const verdict of msg.value.exports) {
          if (!verdict.accepted) log.warn({ service: `${verdict.namespace}/${verdict.name}`, reason: verdict.reason }, 'export not accepted by the federation');
        }
        return;
      case 'rejected':
        log.warn({ reason: msg.value.reason }, 'controller rejected a message');
        return;
      case 'settings':
        this.options.onSettings?.({ federation: msg.value.federation, defaultsJson: msg.value.defaultsJson, controllerAddresses: msg.value.controllerAddresses });
        return;
    }
  }
}
