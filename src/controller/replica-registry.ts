import { hostname } from 'node:os';
import { sleep } from '../core/backoff.js';
import type { Logger } from '../core/logger.js';
import type { Component } from '../core/lifecycle.js';
import type { AuditEntry, ReplicaRecord, Store } from '../store/store.js';
import { heartbeatInterval } from './gateway-status.js';

/**
 * Announces this controller replica in the store and follows the set of live replicas, so that
 * every gateway learns all of them (in the Sync settings) and can fail over without a load
 * balancer, and so that status believes only records of replicas that are alive. The same loop
 * keeps a copy of the audit log, which a rebuild after the store lost its state writes back.
 */
export class ReplicaRegistry implements Component {
  readonly name = 'replica-registry';
  private addresses: string[] = [];
  private live: ReadonlySet<string> = new Set();
  private audit: AuditEntry[] = [];

  constructor(
    private readonly options: {
      store: Store;
      replicaId: string;
      /** This replica's API address; known once the listener is bound. */
      apiAddress: () => string;
      startedAt: number;
      leaseTtlMs: number;
      /** False while the store's content is not this catalog's (a rebuild): the audit copy is then kept. */
      storeTrusted: () => boolean;
      onAddressesChange: (addresses: readonly string[]) => void;
      log: Logger;
    },
  ) {}

  /** API addresses of the live replicas, this one first. */
  get replicaAddresses(): readonly string[] {
    return this.addresses.length > 0 ? this.addresses : [this.options.apiAddress()];
  }

  get auditCopy(): readonly AuditEntry[] {
    return this.audit;
  }

  /** The ids of live replicas, read now from the store (the last known set when it does not answer). */
  async liveReplicas(): Promise<ReadonlySet<string>> {
    try {
      this.live = new Set((await this.options.store.listReplicas(Date.now())).filter(alive).map((r) => r.id));
    } catch {
      // the store is away: the last known set
    }
    return this.live;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { store, replicaId, leaseTtlMs } = this.options;
    const interval = heartbeatInterval(leaseTtlMs);
    try {
      while (!signal.aborted) {
        const now = Date.now();
        const self = this.options.apiAddress();
        await store.putReplica({ id: replicaId, apiAddress: self, startedAt: this.options.startedAt, expiresAt: now + leaseTtlMs, host: hostname(), pid: process.pid });
        const replicas = (await store.listReplicas(now)).filter(alive);
        this.live = new Set(replicas.map((r) => r.id));
        const next = [self, ...replicas.filter((r) => r.id !== replicaId && r.apiAddress !== self).map((r) => r.apiAddress)];
        if (next.join(',') !== this.addresses.join(',')) {
          const first = this.addresses.length === 0;
          this.addresses = next;
          if (!first) this.options.log.info({ replicas: next }, 'controller replicas changed; telling the gateways');
          this.options.onAddressesChange(next);
        }
        if (this.options.storeTrusted()) {
          const audit = await store.listAudit(1000);
          // An empty log right after a loss must not replace the copy that is to restore it.
          if (audit.length > 0 || this.audit.length === 0) this.audit = audit;
        }
        await sleep(interval, signal);
      }
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
  }

  /** Leaves the registry on a clean stop, so gateways stop dialling this replica at once. */
  async withdraw(): Promise<void> {
    await this.options.store.removeReplica(this.options.replicaId).catch(() => undefined);
  }
}

/**
 * An entry is believed until it expires, except one of this host whose process is gone: a replica
 * restarted on the same host (the common case: a crash and a restart by the supervisor) must not
 * take its previous life's streams for live ones during that life's last TTL. In a container the
 * old pid is outside this process's pid namespace, which reads as gone too — as it is.
 */
function alive(record: ReplicaRecord): boolean {
  if (record.host !== hostname() || record.pid === undefined || record.pid === process.pid) return true;
  try {
    process.kill(record.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
