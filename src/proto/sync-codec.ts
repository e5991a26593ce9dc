/**
 * A faster serializer for the controller's Sync stream. Most gateways see a clusterset service
 * exactly alike, so the controller encodes each service once and every session reuses the bytes
 * (at 50 clusters the per-session encoding was the controller's main cost). Protobuf allows this:
 * a message's encoding is the concatenation of its fields' encodings, and a repeated field may be
 * appended, so pre-encoded services are appended to the rest of the CatalogUpdate as encoded by
 * the generated code. sync-codec.test.ts checks the result decodes identically.
 */
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { ClustersetServiceView } from '../model/clusterset.js';
import { serviceToProto } from './convert.js';
import { CatalogService, CatalogUpdate, ClustersetService, SyncDown } from './gen/fedgate.js';

/** SyncDown.update is field 1; CatalogUpdate.services is field 7; both length-delimited (wire type 2). */
const SYNC_DOWN_UPDATE_TAG = (1 << 3) | 2;
const CATALOG_UPDATE_SERVICES_TAG = (7 << 3) | 2;

/** A SyncDown whose update may carry services already encoded (sent after `update.services`). */
export type OutgoingSyncDown = SyncDown & { encodedServices?: readonly Uint8Array[] };

export function encodeService(view: ClustersetServiceView): Uint8Array {
  return ClustersetService.encode(serviceToProto(view)).finish();
}

export function serializeSyncDown(message: OutgoingSyncDown): Buffer {
  const encoded = message.encodedServices;
  if (message.msg?.$case !== 'update' || !encoded || encoded.length === 0) return Buffer.from(SyncDown.encode(message).finish());
  const update = CatalogUpdate.encode(message.msg.value);
  for (const bytes of encoded) update.uint32(CATALOG_UPDATE_SERVICES_TAG).bytes(bytes);
  return Buffer.from(new BinaryWriter().uint32(SYNC_DOWN_UPDATE_TAG).bytes(update.finish()).finish());
}

/** The Catalog service definition with the serializer above for what the controller sends. */
export const FastCatalogService = {
  sync: { ...CatalogService.sync, responseSerialize: serializeSyncDown },
} as const;
