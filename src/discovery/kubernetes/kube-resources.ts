/** The Kubernetes resources the provider reads and writes, and the raw shape it receives them in. */

export interface KubeResource {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const SERVICES: KubeResource = { group: '', version: 'v1', plural: 'services', kind: 'Service' };
export const ENDPOINT_SLICES: KubeResource = { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', kind: 'EndpointSlice' };
export const SERVICE_EXPORTS: KubeResource = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports', kind: 'ServiceExport' };
export const SERVICE_IMPORTS: KubeResource = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceimports', kind: 'ServiceImport' };

/** Set by the EndpointSlice controller on every slice it manages for a Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** fedgate deletes only ServiceImports that carry this label with the value `fedgate`. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'fedgate';
/** Clusters allowed to consume an export, comma-separated: `fedgate.io/consumers: us-west,eu-west`. */
export const CONSUMERS_ANNOTATION = 'fedgate.io/consumers';

/**
 * An object as it arrives from the API server, unchecked: list items and watch events are plain
 * JSON, and every field beyond `metadata.name` is checked where it is read.
 */
export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export function apiVersionOf(resource: KubeResource): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

/** `/api/v1/services`, `/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/x/status` … */
export function resourcePath(resource: KubeResource, namespace?: string, name?: string, subresource?: string): string {
  const base = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const ns = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const named = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${base}${ns}/${resource.plural}${named}${subresource === undefined ? '' : `/${subresource}`}`;
}

/** True for anything with a string `metadata.name`: the least the informer cache needs. */
export function isRawObject(value: unknown): value is RawObject {
  if (value === null || typeof value !== 'object') return false;
  const metadata = (value as { metadata?: unknown }).metadata;
  if (metadata === null || typeof metadata !== 'object') return false;
  const { name, namespace } = metadata as { name?: unknown; namespace?: unknown };
  return typeof name === 'string' && name !== '' && (namespace === undefined || typeof namespace === 'string');
}

export function objectKey(object: RawObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}
