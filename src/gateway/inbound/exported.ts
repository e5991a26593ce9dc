import { failure } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { ExportedStream, IdentifiedStream } from './inbound-stream.js';

/**
 * Only exported services (and ports), and only to the clusters an export names as consumers:
 * nothing else in the cluster is reachable from a peer.
 */
export function exportedStage(localCluster: string): (next: Handler<ExportedStream>) => Handler<IdentifiedStream> {
  return (next) => (ctx) => {
    const { service } = ctx;
    const exported = ctx.view.localExports.exports.get(service.key);
    if (!exported) return Promise.resolve(failure('service-not-exported', `${service.name}.${service.namespace} is not exported by ${localCluster}`));
    const port = exported.ports.find((p) => p.port === service.port);
    if (!port) return Promise.resolve(failure('port-not-exported', `${service.name}.${service.namespace} exports no port ${service.port}`));
    if (exported.consumers.length > 0 && !exported.consumers.includes(ctx.peer.cluster)) {
      return Promise.resolve(failure('consumer-not-allowed', `${service.name}.${service.namespace} is exported to ${exported.consumers.join(', ')} only, not to ${ctx.peer.cluster}`));
    }
    return next({ ...ctx, exported, port });
  };
}
