/**
 * Prometheus-operator objects (monitoring.coreos.com/v1: PrometheusRule, ServiceMonitor,
 * PodMonitor) checked offline, as the Kubernetes objects are in manifests.test.ts:
 *
 * - types, required fields, enums and patterns by the models of
 *   @kubernetes-models/prometheus-operator, generated from the operator's CRDs (the upstream
 *   release is in the package's `crd-generate.input`, see PROMETHEUS_OPERATOR_CRDS);
 * - fields the CRD does not define, which those models let through and the API server prunes
 *   silently (a misspelt `relabelings` is simply no relabeling): each object is type-checked as an
 *   object literal against the package's generated TypeScript interface, whose excess-property
 *   check reports the unknown field with its path.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const PACKAGE = '@kubernetes-models/prometheus-operator';

export const MONITORING_MODELS = {
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
} as const;

/** The CRD release the models were generated from, e.g. ".../v0.65.1/stripped-down-crds.yaml". */
export const PROMETHEUS_OPERATOR_CRDS: readonly string[] = (() => {
  const manifest = createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`);
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { 'crd-generate': { input: string[] } })['crd-generate'].input;
})();

export function isMonitoringKind(object: { apiVersion: string; kind: string }): boolean {
  return `${object.apiVersion}/${object.kind}` in MONITORING_MODELS;
}

const VIRTUAL_FILE = join(process.cwd(), 'test', 'deploy', '__monitoring_object__.ts');
const OPTIONS: ts.CompilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
  lib: ['lib.es2022.d.ts'],
};

/** One compiler host for every check: the library files are parsed once, not per object. */
const checker = (() => {
  const host = ts.createCompilerHost(OPTIONS);
  const readSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const parsed = new Map<string, ts.SourceFile | undefined>();
  let virtualText = '';
  host.getSourceFile = (name, language, ...rest) => {
    if (name === VIRTUAL_FILE) return ts.createSourceFile(name, virtualText, language, true);
    if (!parsed.has(name)) parsed.set(name, readSourceFile(name, language, ...rest));
    return parsed.get(name);
  };
  host.fileExists = (name) => name === VIRTUAL_FILE || fileExists(name);
  let previous: ts.Program | undefined;
  return (text: string): { source: ts.SourceFile; diagnostics: readonly ts.Diagnostic[] } => {
    virtualText = text;
    const program = ts.createProgram([VIRTUAL_FILE], OPTIONS, host, previous);
    previous = program;
    const source = program.getSourceFile(VIRTUAL_FILE) as ts.SourceFile;
    return { source, diagnostics: ts.getPreEmitDiagnostics(program, source) };
  };
})();

/** The field path of the innermost property at `position` of the object literal, e.g. `spec.endpoints[0].relabelings`. */
function fieldPath(root: ts.Node, position: number): string {
  let node: ts.Node = root;
  for (;;) {
    const child = node.getChildren().find((c) => c.getStart() <= position && position < c.getEnd());
    if (!child) break;
    node = child;
  }
  const parts: string[] = [];
  for (let current: ts.Node | undefined = node; current && current !== root; current = current.parent) {
    const parent: ts.Node | undefined = current.parent;
    if (ts.isPropertyAssignment(current)) parts.unshift(`.${current.name.getText().replace(/^"|"$/g, '')}`);
    else if (parent && ts.isArrayLiteralExpression(parent)) parts.unshift(`[${parent.elements.indexOf(current as ts.Expression)}]`);
  }
  return parts.join('').replace(/^\./, '');
}

const cache = new Map<string, string[]>();

/**
 * Problems the TypeScript interface of the object's kind finds: unknown fields (with their path)
 * and wrongly typed values. [] for a clean object.
 */
export function monitoringFieldProblems(object: { apiVersion: string; kind: string }): string[] {
  if (!isMonitoringKind(object)) throw new Error(`${object.apiVersion} ${object.kind}: not a prometheus-operator kind`);
  const json = JSON.stringify(object, null, 2);
  const known = cache.get(json);
  if (known) return known;
  const prefix = `import type { I${object.kind} } from '${PACKAGE}/monitoring.coreos.com/v1/${object.kind}';\nexport const object: I${object.kind} = `;
  const { source, diagnostics } = checker(`${prefix}${json};\n`);
  const problems = diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ').replace(/ in type '\{.*$/, '');
    return d.start !== undefined && d.start >= prefix.length ? `${fieldPath(source, d.start)}: ${message}` : message;
  });
  cache.set(json, problems);
  return problems;
}
