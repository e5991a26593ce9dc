import type { InputIssue } from '../core/errors.js';
import { policyKey } from '../model/catalog.js';

/** The identity of a policy document: enough to store, list and delete it. */
export interface PolicyEnvelope {
  key: string;
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Reads apiVersion, kind and metadata of a document; every problem is reported with its path. */
export function readEnvelope(document: unknown, issues: InputIssue[], source?: string): PolicyEnvelope | undefined {
  const at = (path: string, message: string): void => {
    issues.push({ source, path, message });
  };
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    at('', 'a policy document must be a mapping');
    return undefined;
  }
  const doc = document as Record<string, unknown>;
  const apiVersion = doc.apiVersion;
  const kind = doc.kind;
  const metadata = doc.metadata as Record<string, unknown> | undefined;
  if (typeof apiVersion !== 'string' || apiVersion === '') at('apiVersion', 'required');
  if (typeof kind !== 'string' || kind === '') at('kind', 'required');
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    at('metadata', 'required');
    return undefined;
  }
  const name = metadata.name;
  const namespace = metadata.namespace ?? 'default';
  if (typeof name !== 'string' || !NAME.test(name)) at('metadata.name', typeof name === 'string' ? `"${name}" is not a valid name (lower-case letters, digits, "-" and ".")` : 'required');
  if (typeof namespace !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) at('metadata.namespace', 'must be a DNS label: lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit');
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || typeof name !== 'string' || typeof namespace !== 'string') return undefined;
  return { key: policyKey(kind, namespace, name), apiVersion, kind, namespace, name };
}

/** Metadata the Kubernetes API server adds to an object; none of it is part of a policy. */
const SERVER_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'finalizers', 'ownerReferences', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName'];
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * A document as the Kubernetes API serves it (`kubectl get … -o yaml`), back to the document that
 * was written: server-populated metadata, kubectl's last-applied annotation and `status` removed.
 * Other fields are left for validation to judge.
 */
export function asWritten(document: unknown): unknown {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) return document;
  const { status: _status, ...rest } = document as Record<string, unknown>;
  const metadata = rest.metadata;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return rest;
  const cleaned: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(metadata)) if (!SERVER_METADATA.includes(key)) cleaned[key] = value;
  const annotations = cleaned.annotations as Record<string, unknown> | undefined;
  if (annotations && typeof annotations === 'object' && LAST_APPLIED in annotations) {
    const { [LAST_APPLIED]: _applied, ...others } = annotations;
    if (Object.keys(others).length > 0) cleaned.annotations = others;
    else delete cleaned.annotations;
  }
  return { ...rest, metadata: cleaned };
}

/** `kind: List` (kubectl's output for several objects) or `<Kind>List`: its items; anything else: itself. */
export function listItems(document: unknown): unknown[] | undefined {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) return undefined;
  const doc = document as Record<string, unknown>;
  if (typeof doc.kind === 'string' && doc.kind.endsWith('List') && Array.isArray(doc.items)) return doc.items;
  return undefined;
}
