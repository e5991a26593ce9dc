import type { Duplex } from 'node:stream';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { CALLER_HEADER } from '../request/headers.js';
import type { AuthorizationRequest } from '../inbound/authorize.js';
import type { Outcome } from '../request/outcome.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { RouteEntry, RoutingTable } from '../routing/routing-table.js';
import { ErrorCode } from '../../http2/index.js';
import type { PeerPool } from '../endpoint/peer-pool.js';
import type { ControlView } from '../view/control-view.js';

export interface TcpImportOptions {
  /** `name.namespace` */
  service: string;
  port: number;
  listen: string;
  /** Clusters to try before giving up on a connection. */
  attempts: number;
}

export interface TcpImportPlane {
  localCluster: string;
  routing: RoutingTable;
  /** The control view a connection is routed under (read when it arrives). */
  view: () => ControlView;
  pool: (view: ControlView, cluster: string) => PeerPool | undefined;
  metrics: GatewayMetrics;
  log: Logger;
  connectTimeoutMs: number;
  /** The identity a local caller at this address crosses the federation with. */
  callerIdentity: (remoteAddress: string | undefined) => string;
  /** Authorization when the connection is served by this cluster's own export. */
  authorize: (view: ControlView, request: AuthorizationRequest) => Outcome | undefined;
}

/**
 * One local port per imported TCP service. Each connection is carried to the chosen cluster as an
 * HTTP/2 CONNECT stream over the pooled mTLS session (or straight to a local endpoint), and tried
 * on another cluster if the tunnel cannot be set up. The client socket is paused until then, so
 * no byte is lost or sent twice.
 */
export class TcpImportListener {
  private readonly server: Server;
  port = 0;

  constructor(
    private readonly plane: TcpImportPlane,
    private readonly options: TcpImportOptions,
  ) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => void this.accept(socket));
  }

  async start(): Promise<number> {
    const address = parseHostPort(this.options.listen);
    if (!address) throw new Error(`tcp import listen address "${this.options.listen}" is not host:port`);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async accept(client: Socket): Promise<void> {
    client.on('error', () => undefined);
    const [name, namespace] = this.options.service.split('.') as [string, string];
    const key = `${namespace}/${name}`;
    const tried = new Set<string>();
    const caller = this.plane.callerIdentity(client.remoteAddress);
    const view = this.plane.view();
    for (let attempt = 0; attempt < this.options.attempts; attempt++) {
      const route = this.plane.routing.resolve(view, namespace, name, this.options.port);
      if (!('targets' in route)) {
        this.plane.log.warn({ service: key, reason: route.message }, 'tcp import: no route');
        break;
      }
      const pick = route.picker.pick(tried.size > 0 ? { exclude: tried } : undefined);
      if (pick.type !== 'complete') break;
      tried.add(pick.cluster);
      const upstream = pick.cluster === this.plane.localCluster ? await this.connectLocal(view, route, caller) : await this.connectRemote(view, route, pick.cluster, caller);
      if (typeof upstream === 'string') {
        this.plane.metrics.tcpConnections.inc({ service: key, destination_cluster: pick.cluster, result: 'failed' });
        this.plane.log.warn({ service: key, cluster: pick.cluster, err: upstream }, 'tcp tunnel failed; trying another cluster');
        continue;
      }
      this.plane.metrics.tcpConnections.inc({ service: key, destination_cluster: pick.cluster, result: 'connected' });
      client.pipe(upstream);
      upstream.pipe(client);
      upstream.on('error', () => client.destroy());
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.resume();
      return;
    }
    client.destroy();
  }

  private connectLocal(view: ControlView, route: RouteEntry, caller: string): Promise<Socket | string> {
    const denied = this.plane.authorize(view, { service: { namespace: route.namespace, name: route.name, port: route.port.port, key: route.key }, caller, sourceCluster: this.plane.localCluster, method: 'CONNECT', path: '' });
    if (denied?.kind === 'failure') return Promise.resolve(`denied: ${denied.failure.message}`);
    const endpoint = route.localExport?.endpoints.find((e) => e.ready);
    const port = route.localPort;
    if (!endpoint || !port) return Promise.resolve('no ready local endpoint');
    return new Promise((resolve) => {
      const socket = netConnect({ host: endpoint.address, port: port.targetPort, allowHalfOpen: true, noDelay: true });
      socket.once('connect', () => resolve(socket));
      socket.once('error', (error) => resolve(errorMessage(error)));
    });
  }

  private async connectRemote(view: ControlView, route: RouteEntry, cluster: string, caller: string): Promise<Duplex | string> {
    const pool = this.plane.pool(view, cluster);
    if (!pool) return `no connection pool for ${cluster}`;
    let peer;
    try {
      peer = await pool.acquire();
    } catch (error) {
      return errorMessage(error);
    }
    let stream;
    try {
      stream = peer.session.request([':method', 'CONNECT', ':authority', `${route.name}.${route.namespace}.svc.clusterset.local:${route.port.port}`, CALLER_HEADER, caller], false);
    } catch (error) {
      pool.release(peer);
      return errorMessage(error);
    }
    stream.once('close', () => pool.release(peer));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        stream.close(ErrorCode.CANCEL);
        resolve(`no tunnel within ${this.plane.connectTimeoutMs}ms`);
      }, this.plane.connectTimeoutMs);
      stream.once('response', (headers) => {
        clearTimeout(timer);
        const status = Number(headers[':status']);
        if (status === 200) resolve(stream);
        else {
          stream.close(ErrorCode.CANCEL);
          resolve(`tunnel refused with status ${status} (${String(headers['x-fedgate-reason'] ?? '')})`);
        }
      });
      stream.once('error', (error) => {
        clearTimeout(timer);
        resolve(errorMessage(error));
      });
    });
  }
}
