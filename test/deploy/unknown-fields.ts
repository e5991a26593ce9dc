/**
 * Finds fields the Kubernetes API does not define. kubernetes-models checks types, required
 * fields and formats but lets unknown fields through, and the API server drops those silently
 * (a misspelt `readinessProbe` is simply no probe). The field lists come from the generated
 * models of @kubernetes/client-node: each model class lists its attributes with their types.
 */
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  baseName: string;
  type: string;
}

type ModelClass = { getAttributeTypeMap?: () => Attribute[] };

const models = k8s as unknown as Record<string, ModelClass | undefined>;

function attributesOf(type: string): Attribute[] | undefined {
  const model = models[type];
  return typeof model?.getAttributeTypeMap === 'function' ? model.getAttributeTypeMap() : undefined;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function walk(value: unknown, type: string, path: string, problems: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, index) => walk(item, array[1] as string, `${path}[${index}]`, problems));
    return;
  }
  const record = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (record) {
    if (isMap(value)) for (const [key, item] of Object.entries(value)) walk(item, record[1] as string, `${path}.${key}`, problems);
    return;
  }
  const attributes = attributesOf(type);
  // Primitives, IntOrString, Date, any: their values are kubernetes-models' to check.
  if (!attributes || !isMap(value)) return;
  const known = new Map(attributes.map((a) => [a.baseName, a.type]));
  for (const [key, item] of Object.entries(value)) {
    let itemType = known.get(key);
    if (itemType === undefined) {
      problems.push(`${path}.${key}: not a field of ${type.replace(/^V1/, '')}`);
      continue;
    }
    // JSON schemas nest through fields typed `any` in the generated model.
    if (type === 'V1JSONSchemaProps' && (key === 'items' || key === 'additionalProperties') && isMap(item)) itemType = 'V1JSONSchemaProps';
    walk(item, itemType, `${path}.${key}`, problems);
  }
}

/**
 * Paths of the fields of `object` that its kind does not have, e.g.
 * `spec.template.spec.containers[0].readinesProbe: not a field of Container`.
 */
export function unknownFields(object: { apiVersion: string; kind: string }): string[] {
  const version = object.apiVersion.split('/').pop() as string;
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${object.kind}`;
  if (!attributesOf(type)) return [`${object.apiVersion} ${object.kind}: no model in @kubernetes/client-node to check fields against`];
  const problems: string[] = [];
  walk(object, type, '', problems);
  return problems.map((p) => p.replace(/^\./, ''));
}
