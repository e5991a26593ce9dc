import type { IncomingHttpHeaders } from 'node:http2';
import type { SpiffeId } from '../../model/spiffe-id.js';
import type { LocalExport, LocalExportPort } from '../../discovery/provider.js';
import type { H2ServerStream } from '../../http2/index.js';
import type { ServiceAddress } from '../request/request.js';
import type { ControlView } from '../view/control-view.js';

/** A verified peer: the gateway of another member cluster. */
export interface InboundPeer {
  id: SpiffeId;
  /** `id` as a string, computed once per session. */
  spiffeId: string;
  cluster: string;
  /** Caller identities this peer asserted, checked once each (a peer asserts the same few on every request). */
  callers: Map<string, string | null>;
}

/** A stream from a peer gateway, as the inbound server read it: what the inbound stages start from. */
export interface InboundStream {
  readonly view: ControlView;
  readonly peer: InboundPeer;
  readonly stream: H2ServerStream;
  readonly headers: IncomingHttpHeaders;
  /** The request has no body (END_STREAM came with its headers). */
  readonly endStream: boolean;
  readonly method: string;
  /** The request target; empty for CONNECT. */
  readonly path: string;
  readonly grpc: boolean;
  /** The clusterset service and port the peer asked for. */
  readonly service: ServiceAddress;
}

/** After the identity stage: the caller, verified against the peer's trust domain. */
export interface IdentifiedStream extends InboundStream {
  readonly caller: string;
}

/** After the export stage: the local export and port that serve it. */
export interface ExportedStream extends IdentifiedStream {
  readonly exported: LocalExport;
  readonly port: LocalExportPort;
}
