/**
 * fedgate's HTTP/2 stack (RFC 9113, RFC 7541), as one package: the client role (gateway-to-gateway
 * hop, local h2c and gRPC endpoints) and the server role (the inbound listener, h2c on the
 * outbound listener). Nothing here knows about gateways, policies or catalogs; code outside this
 * folder imports only from this file. Its limits and their refusals: ./limits.ts and
 * docs/http2-limits.md.
 */
export { H2ClientSession, H2ClientStream, type H2ClientOptions } from './client-session.js';
export { H2ServerSession, H2ServerStream, type H2ServerOptions, type RespondOptions } from './server-session.js';
export { type H2ConnectionOptions, type RemoteSettings } from './connection.js';
export { Http2Error, Http2ErrorCodes, type Http2ErrorScope } from './http2-error.js';
export { H2_CONNECTION_LIMIT_DEFAULTS, H2_LIMIT_KINDS, type H2ConnectionLimits, type H2LimitKind, type H2LimitScope } from './limits.js';
export { CLIENT_PREFACE, ErrorCode, errorName } from './frames.js';
export { endDelivery, startDelivery, type Delivery, type DirectBody } from './direct-body.js';
export { StreamTable } from './stream-table.js';
