import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, stringify, type Document, type Node } from 'yaml';
import { ErrorCodes, FedgateError, type InputIssue } from '../core/errors.js';
import type { FieldPath, ShapeIssue } from './shape.js';

/** One YAML document with enough position information to turn a field path into a line number. */
export class YamlDocument {
  constructor(
    readonly source: string,
    readonly value: unknown,
    private readonly document: Document | undefined,
    private readonly lines: LineCounter | undefined,
    /** Index of this document in a multi-document file. */
    readonly index: number = 0,
  ) {}

  /** A document built from an object that never was YAML (environment, API calls): no lines. */
  static fromValue(source: string, value: unknown): YamlDocument {
    return new YamlDocument(source, value, undefined, undefined);
  }

  /**
   * The line of the deepest node on `path` that exists. A missing field is reported at the line of
   * its parent mapping's key, which is where the operator has to add it.
   */
  lineOf(path: FieldPath): number | undefined {
    if (!this.document || !this.lines) return undefined;
    let node: unknown = this.document.contents;
    let line = this.lineAt(node);
    for (const part of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
        if (!pair) break;
        line = this.lineAt(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        const item = node.items[part];
        if (item === undefined) break;
        node = isPair(item) ? item.value : item;
        line = this.lineAt(node) ?? line;
      } else {
        break;
      }
    }
    return line;
  }

  private lineAt(node: unknown): number | undefined {
    const range = (node as Node | null | undefined)?.range;
    if (!range || !this.lines) return undefined;
    return this.lines.linePos(range[0]).line;
  }

  /** Turns validation issues into located input issues (`file:line: path: message`). */
  locate(issues: readonly ShapeIssue[], formatPath: (path: FieldPath) => string): InputIssue[] {
    return issues.map((issue) => ({
      source: this.source,
      line: this.lineOf(issue.path),
      path: formatPath(issue.path),
      message: issue.message,
      severity: issue.severity ?? 'error',
    }));
  }
}

export interface ParsedYaml {
  documents: YamlDocument[];
  /** Syntax errors, each with its line; when present, documents may be incomplete. */
  issues: InputIssue[];
}

/** Parses YAML text (possibly several `---` documents); duplicate keys are syntax errors. */
export function parseYaml(source: string, text: string): ParsedYaml {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const issues: InputIssue[] = [];
  const documents: YamlDocument[] = [];
  if (!Array.isArray(docs)) {
    // An empty stream parses to an EmptyStream, which has no documents.
    return { documents, issues };
  }
  docs.forEach((doc, index) => {
    for (const error of doc.errors) {
      const line = lines.linePos(error.pos[0]).line;
      issues.push({ source, line, path: '', message: `YAML: ${firstLine(error.message)}` });
    }
    if (doc.errors.length > 0) return;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    documents.push(new YamlDocument(source, value, doc, lines, index));
  });
  return { documents, issues };
}

function firstLine(message: string): string {
  return message.split('\n')[0]?.trim() ?? message;
}

/** Reads and parses a YAML file; a missing or unreadable file is a clear error naming it. */
export function readYamlFile(path: string, displayName: string = path): ParsedYaml {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new FedgateError(
      ErrorCodes.CONFIG_NOT_FOUND,
      code === 'ENOENT' ? `${displayName}: file not found` : `${displayName}: cannot read (${code ?? String(error)})`,
    );
  }
  return parseYaml(displayName, text);
}

/** Plain data as YAML (for `-o yaml` output); keys keep their order. */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}
