import type { Logger } from '../../core/logger.js';
import type { LocalForwarder } from '../endpoint/local-forwarder.js';
import type { Handler } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import { authorizeStage } from './authorize.js';
import { blackholeStage } from './blackhole.js';
import { exportedStage } from './exported.js';
import { identityStage } from './identity.js';
import type { ExportedStream, InboundStream } from './inbound-stream.js';
import { serveLocally } from './serve-locally.js';

export interface InboundStackDeps {
  localCluster: string;
  forwarder: LocalForwarder;
  metrics: GatewayMetrics;
  log: Logger;
}

/**
 * Everything a peer's request goes through, in order: the caller's identity, the export it asks
 * for, a blackhole, authorization, then a local endpoint. HTTP requests and TCP tunnels (CONNECT)
 * take the same stages; only the terminal tells them apart.
 */
export function inboundStack(deps: InboundStackDeps): Handler<InboundStream> {
  return identityStage(deps.log)(exportedStage(deps.localCluster)(blackholeStage<ExportedStream>()(authorizeStage(deps)(serveLocally(deps.forwarder, deps.localCluster)))));
}
