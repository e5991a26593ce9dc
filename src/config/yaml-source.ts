import { readFileSync } from 'node:fs';
import { CST, isMap, isPair, isScalar, isSeq, LineCounter, Parser, parseAllDocuments, stringify, type Document, type Node, type YAMLError } from 'yaml';
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

/** A quote or flow bracket that is never closed, where it opens. */
interface Opener {
  offset: number;
  open: string;
  close: string;
}

function unclosedOpeners(text: string): Opener[] {
  const out: Opener[] = [];
  const check = (node: CST.Token | null | undefined): void => {
    if (!node) return;
    if (node.type === 'flow-collection') {
      const close = node.start.source === '[' ? ']' : '}';
      if (!node.end.some((t) => t.source === close)) out.push({ offset: node.offset, open: node.start.source, close });
    } else if (node.type === 'single-quoted-scalar' || node.type === 'double-quoted-scalar') {
      const quote = node.source[0] as string;
      const body = node.source.trimEnd();
      const escapes = quote === '"' ? (/\\*"$/.exec(body.slice(1))?.[0].length ?? 1) - 1 : 0;
      if (body.length < 2 || !body.endsWith(quote) || escapes % 2 === 1) out.push({ offset: node.offset, open: quote, close: quote });
    }
  };
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') continue;
    check(token.value);
    CST.visit(token, (item) => {
      for (const node of [item.key, item.value]) check(node);
    });
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/**
 * The one error to report for a document. One slip makes the parser report several errors (an
 * over-indented line yields "nested mappings are not allowed in compact mappings", "implicit keys
 * need to be on a single line" and more), all consequences of the first; and an unclosed quote or
 * bracket is noticed where the parser gives up, often past the last line. This reports the first
 * error, at the line the operator has to fix.
 */
function primaryError(errors: readonly YAMLError[], text: string, lines: LineCounter, openers: readonly Opener[]): { line: number; message: string } {
  const first = errors[0] as YAMLError;
  const lastLine = Math.max(1, text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length);
  let offset = first.pos[0];
  let message = firstLine(first.message);
  if (first.code === 'BLOCK_AS_IMPLICIT_KEY' || first.code === 'MULTILINE_IMPLICIT_KEY') {
    // Reported at the key whose value ran on; the misplaced line is where that run ends.
    const runOn = errors.find((e) => e.code === 'MULTILINE_IMPLICIT_KEY');
    if (runOn) offset = Math.max(runOn.pos[0], runOn.pos[1] - 1);
    message = 'bad indentation: this line lines up with none of the keys or list items above it';
  }
  if (/Sequence item without - indicator/.test(first.message)) {
    message = 'bad indentation: this line lines up with a list\'s "-" (start a new item with "- ", or indent it as a key of the item above)';
  }
  const unclosed = /Missing closing|must be sufficiently indented and end with|Unexpected end of|not properly closed/.test(first.message) ? [...openers].reverse().find((o) => o.offset <= offset) : undefined;
  if (unclosed) {
    offset = unclosed.offset;
    message = unclosed.open === unclosed.close ? `the quote ${unclosed.open} opened here is never closed` : `"${unclosed.open}" opened here is never closed with "${unclosed.close}"`;
  }
  return { line: Math.min(lines.linePos(offset).line, lastLine), message };
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
  let openers: Opener[] | undefined;
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      openers ??= unclosedOpeners(text);
      const { line, message } = primaryError(doc.errors, text, lines, openers);
      issues.push({ source, line, path: '', message: `YAML: ${message}` });
      return;
    }
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
