import { failure, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { ExportedStream } from './inbound-stream.js';

/**
 * A service under a blackhole (a drill) answers nothing: the stream stays open until the peer
 * gives up, as a dead network path would look. The outcome, once the peer closed the stream, is
 * `blackholed`, which the server counts but never writes.
 */
export function blackholeStage<C extends Pick<ExportedStream, 'view' | 'service' | 'stream'>>(): (next: Handler<C>) => Handler<C> {
  return (next) => (ctx) => {
    if (!ctx.view.blackholes.has(ctx.service.key)) return next(ctx);
    return new Promise<Outcome>((resolve) => ctx.stream.once('close', () => resolve(failure('blackholed', `${ctx.service.key} is blackholed here`))));
  };
}
