import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Counter } from '../../admin/metrics.js';
import type { FederationSettings, Hello, SyncDown, SyncUp } from '../../proto/gen/fedgate.js';
import { toGrpcError } from '../../proto/grpc-errors.js';
import { GrpcStatus, type ServerDuplexStream } from '../../proto/grpc-transport.js';
import type { Store } from '../../store/store.js';
import type { CatalogState } from '../catalog-state.js';
import type { CatalogWriter } from './catalog-writer.js';
import { GatewaySession } from './gateway-session.js';
import type { SessionRegistry } from './session-registry.js';
import { StatusWriter } from './status-writer.js';
import { helloProblem } from './sync-auth.js';

const HELLO_TIMEOUT_MS = 10_000;

export interface SyncStreamDeps {
  catalog: CatalogState;
  store: Store;
  writer: CatalogWriter;
  sessions: SessionRegistry;
  replicaId: string;
  leaseTtlMs: number;
  rejected: Counter<'reason'>;
  settings: () => FederationSettings;
  /** Verdicts on the cluster's exports as they stand, for a new stream. */
  sendCurrentVerdicts: (session: GatewaySession) => void;
  log: Logger;
}

/**
 * One authenticated Sync stream: waits for Hello, registers the session (replacing the same
 * instance's older stream), greets it, then handles its messages one at a time in order; on any
 * end of the stream, forgets the session and records the instance disconnected.
 */
export class SyncStream {
  private session: GatewaySession | undefined;
  private status: StatusWriter | undefined;
  private log: Logger;
  private chain: Promise<void> = Promise.resolve();
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly call: ServerDuplexStream<SyncUp, SyncDown>,
    private readonly cluster: string,
    private readonly deps: SyncStreamDeps,
  ) {
    // Until Hello names the instance, the stream is only known by its cluster.
    this.log = deps.log.child({ cluster });
    this.helloTimer = setTimeout(() => {
      if (!this.session) this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'no Hello within 10s');
    }, HELLO_TIMEOUT_MS);
    call.on('data', (message: SyncUp) => {
      this.chain = this.chain
        .then(() => this.onMessage(message))
        .catch((error: unknown) => {
          this.log.warn({ err: errorMessage(error) }, 'sync message failed');
          this.session?.reject(errorMessage(error));
        });
    });
    const cleanup = (): void => this.cleanup();
    call.on('end', () => {
      cleanup();
      call.end();
    });
    call.on('cancelled', cleanup);
    call.on('error', cleanup);
    call.on('close', cleanup);
  }

  private fail(code: number, details: string): void {
    this.call.emit('error', Object.assign(new Error(details), { code, details }));
  }

  private cleanup(): void {
    clearTimeout(this.helloTimer);
    const session = this.session;
    if (!session) return;
    this.status?.stop();
    session.markClosed();
    // A stream replaced by a newer one of the same instance leaves the status to its successor.
    if (this.deps.sessions.remove(session)) {
      this.status?.disconnected();
      this.log.info('gateway disconnected');
    }
  }

  private async onMessage(message: SyncUp): Promise<void> {
    const msg = message.msg;
    if (!msg) return;
    const session = this.session;
    if (!session) {
      if (msg.$case !== 'hello') {
        this.fail(GrpcStatus.FAILED_PRECONDITION, 'the first message must be Hello');
        return;
      }
      await this.onHello(msg.value);
      return;
    }
    session.lastSeen = Date.now();
    const { writer } = this.deps;
    switch (msg.$case) {
      case 'hello':
        session.reject('Hello may only be sent once per stream');
        return;
      case 'exports':
        await writer.writeExports(session, msg.value.upserts, msg.value.deletes, msg.value.full, this.log);
        return;
      case 'ack':
        session.ackedRevision = Math.max(session.ackedRevision, msg.value.revision);
        session.ackedPolicyRevision = Math.max(session.ackedPolicyRevision, msg.value.policyRevision);
        // A refused policy set stays reported until a later set is in force on the gateway.
        if (!session.lastNack.startsWith('policy:') || session.ackedPolicyRevision >= session.lastNackRevision) session.lastNack = '';
        this.status?.soon();
        return;
      case 'nack':
        // A refused policy set is re-sent after every ACK: only its first arrival is news.
        if (msg.value.reason.startsWith('policy:') && msg.value.reason === session.lastNack) return;
        session.lastNack = msg.value.reason;
        session.lastNackRevision = msg.value.reason.startsWith('policy:') ? msg.value.policyRevision : msg.value.revision;
        this.log.warn({ revision: msg.value.revision, policyRevision: msg.value.policyRevision, reason: msg.value.reason }, 'gateway rejected an update');
        if (msg.value.reason.startsWith('resync:')) session.startWithSnapshot();
        this.status?.soon();
        return;
      case 'health':
        return;
      case 'bundle':
        await writer.updateBundle(session, msg.value, this.log);
        return;
    }
  }

  private async onHello(hello: Hello): Promise<void> {
    clearTimeout(this.helloTimer);
    const problem = helloProblem(this.cluster, hello);
    if (problem) {
      this.deps.rejected.inc({ reason: problem.reason });
      this.call.emit('error', toGrpcError(problem.error));
      return;
    }
    this.log = this.log.child({ instance: hello.instance.slice(0, 128) });
    // The session is known to this stream before Hello's store work starts: a stream that ends
    // meanwhile is cleaned up with its session, instead of leaving it registered (renewing the
    // cluster's lease for a gateway that is gone).
    const session = new GatewaySession(this.cluster, hello.instance, hello.version, this.call, this.deps.catalog, this.log);
    this.session = session;
    // Only the same instance is replaced (it reconnected while its old stream still looked open);
    // other instances of the cluster keep their streams.
    const previous = this.deps.sessions.add(session);
    if (previous) {
      previous.close(GrpcStatus.ABORTED, 'replaced by a newer stream from the same gateway instance');
      this.log.info('gateway instance reconnected; its previous stream was closed');
    }
    session.sendSettings(this.deps.settings());
    this.log.info({ epoch: hello.epoch, revision: hello.revision, exports: hello.exports.length, instances: this.deps.sessions.of(this.cluster).length }, 'gateway connected');
    try {
      await this.deps.writer.greet(session, hello, this.log);
      this.deps.sendCurrentVerdicts(session);
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'could not admit the gateway; it will reconnect');
      session.close(GrpcStatus.UNAVAILABLE, `the controller could not admit this gateway: ${errorMessage(error)}`);
      return;
    }
    if (session.isClosed) return;
    this.status = new StatusWriter(session, {
      store: this.deps.store,
      catalog: this.deps.catalog,
      replicaId: this.deps.replicaId,
      leaseTtlMs: this.deps.leaseTtlMs,
      log: this.log,
      renewLease: () => this.deps.writer.renewLease(this.cluster, this.log),
    });
    this.status.start();
  }
}
