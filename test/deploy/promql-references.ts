/**
 * What a PromQL expression refers to: the metrics it selects (with the label names of each
 * selector) and the label names it groups or matches on. Enough of PromQL's lexical structure to
 * check queries against the metrics fedgate defines (metric-catalog.ts), not a parser: it does not
 * judge whether the expression is valid (promtool does that for the alert rules).
 *
 * Grafana's variables (`$service`, `${datasource}`, `$__rate_interval`) are accepted where PromQL
 * has a string or a duration.
 */

export interface Selector {
  /** The metric name, or '' for a selector without one (`{__name__=~"…"}`). */
  metric: string;
  /** Label names of its matchers. */
  labels: string[];
}

export interface PromqlReferences {
  selectors: Selector[];
  /** Label names of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right` lists. */
  grouping: string[];
}

type Token = { kind: 'identifier' | 'number' | 'punctuation'; text: string };

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'atan2']);
/** Aggregation operators: followed by `(` or by a `by`/`without` clause. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);

function tokenize(expr: string): Token[] {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // Grafana variables stand for durations (in ranges) or strings (already removed above).
    .replace(/\$\{[^}]*\}|\$\w+/g, '1m');
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const space = /^\s+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const number = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*/.exec(rest);
    if (number) {
      tokens.push({ kind: 'number', text: number[0] });
      i += number[0].length;
      continue;
    }
    const identifier = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
    if (identifier) {
      tokens.push({ kind: 'identifier', text: identifier[0] });
      i += identifier[0].length;
      continue;
    }
    tokens.push({ kind: 'punctuation', text: rest[0] as string });
    i += 1;
  }
  return tokens;
}

export function promqlReferences(expr: string): PromqlReferences {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  let current: Selector | undefined;
  let inBraces = false;
  for (let k = 0; k < tokens.length; k++) {
    const token = tokens[k] as Token;
    const next = tokens[k + 1];
    if (token.kind === 'punctuation') {
      if (token.text === '{') {
        inBraces = true;
        if (!current) {
          current = { metric: '', labels: [] };
          selectors.push(current);
        }
      } else if (token.text === '}') {
        inBraces = false;
        current = undefined;
      }
      continue;
    }
    if (token.kind !== 'identifier') continue;
    if (inBraces) {
      if (next?.text === '=' || next?.text === '!') current?.labels.push(token.text);
      continue;
    }
    current = undefined;
    if (GROUPING.has(token.text)) {
      if (next?.text !== '(') continue;
      for (k += 2; k < tokens.length && tokens[k]?.text !== ')'; k++) {
        if (tokens[k]?.kind === 'identifier') grouping.push((tokens[k] as Token).text);
      }
      continue;
    }
    if (KEYWORDS.has(token.text) || AGGREGATIONS.has(token.text) || next?.text === '(') continue;
    current = { metric: token.text, labels: [] };
    selectors.push(current);
    if (next?.text !== '{') current = undefined;
  }
  return { selectors, grouping };
}
