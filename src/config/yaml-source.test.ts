import { formatIssue } from '../core/errors.js';
import { parseYaml } from './yaml-source.js';

const CLUSTER = (slip: string): string =>
  [
    'apiVersion: fedgate.io/v1alpha1', //  1
    'kind: Cluster', //                     2
    'metadata:', //                         3
    '  name: us-east', //                   4
    'spec:', //                             5
    '  region: us-east-1', //               6
    slip, //                                7
    '  gateway:', //                        8
    '    inbound: 127.0.0.1:15443', //      9
    '    outbound: 127.0.0.1:15001', //    10
    '  exports:', //                       11
    '    - service: payments', //          12
    '      namespace: default', //         13
    '      ports: [ { name: http, port: 8080, targetPort: 19001, protocol: http } ]', // 14
    '',
  ].join('\n');

const INDENTATION = 'bad indentation: this line lines up with none of the keys or list items above it';

describe('YAML syntax errors: one per slip, at the line to fix', () => {
  it.each<[string, string, string[]]>([
    ['a key indented one space too far', CLUSTER('   zone: us-east-1a'), [`c.yaml:7: YAML: ${INDENTATION}`]],
    ['a key indented one space too little', CLUSTER(' zone: us-east-1a'), ['c.yaml:7: YAML: All mapping items must start at the same column']],
    ['a nested key under a key that has a value', CLUSTER('  zone: us-east-1a').replace('    outbound', '      outbound'), [`c.yaml:10: YAML: ${INDENTATION}`]],
    ['a list item out of line', CLUSTER('  zone: a').replace('      namespace: default', '     namespace: default'), ['c.yaml:13: YAML: bad indentation: this line lines up with a list\'s "-" (start a new item with "- ", or indent it as a key of the item above)']],
    ['a list item dedented', CLUSTER('  zone: a') + '   - service: greeter\n      namespace: default\n', [`c.yaml:15: YAML: ${INDENTATION}`]],
    ['a flow list never closed', CLUSTER('  zone: a').replace('protocol: http } ]', 'protocol: http }'), ['c.yaml:14: YAML: "[" opened here is never closed with "]"']],
    ['a flow mapping never closed, at the end of the file', 'a: 1\nb: {x: 1\n', ['c.yaml:2: YAML: "{" opened here is never closed with "}"']],
    ['a double quote never closed (the parser notices past the last line)', CLUSTER('  zone: "us-east-1a'), ['c.yaml:7: YAML: the quote " opened here is never closed']],
    ['a single quote never closed on the last line', "a: 1\nb: 'x\n", ["c.yaml:2: YAML: the quote ' opened here is never closed"]],
    ['a tab as indentation', CLUSTER('\tzone: us-east-1a'), ['c.yaml:7: YAML: Tabs are not allowed as indentation']],
    ['a duplicate key', CLUSTER('  region: again'), ['c.yaml:7: YAML: Map keys must be unique']],
    ['one error per document of a multi-document file', 'a: 1\n---\nb: [1\n---\nc: "x\n', ['c.yaml:3: YAML: "[" opened here is never closed with "]"', 'c.yaml:5: YAML: the quote " opened here is never closed']],
  ])('%s', (_name, text, expected) => {
    const parsed = parseYaml('c.yaml', text);
    expect(parsed.issues.map(formatIssue)).toEqual(expected);
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    for (const issue of parsed.issues) expect(issue.line).toBeLessThanOrEqual(lines);
  });

  it('a valid file has no issues, and a bad document does not hide the good ones', () => {
    expect(parseYaml('c.yaml', CLUSTER('  zone: us-east-1a')).issues).toEqual([]);
    const parsed = parseYaml('c.yaml', 'a: 1\n---\nb: [1\n---\nc: 3\n');
    expect(parsed.documents.map((d) => d.value)).toEqual([{ a: 1 }, { c: 3 }]);
  });
});
