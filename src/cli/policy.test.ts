import { appliedWarnings } from './policy.js';

describe('appliedWarnings: the controller\'s warnings, with the line only the local check knows', () => {
  const local = [
    { source: 'dr.yaml', line: 13, path: 'spec.trafficPolicy.connectionPool.tcp.maxConnections', message: "100 is above fedgate's maximum 64; using 64", severity: 'warning' as const },
    { source: 'vs.yaml', line: 19, path: 'spec.http[0].route[0].destination.subset', message: 'subset "v2" is not defined … in these documents', severity: 'warning' as const },
  ];
  it.each<[string, string[], string[]]>([
    ['the same finding: printed with its field line', ["dr.yaml:1: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64"], ["dr.yaml:13: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64"]],
    ['only the controller knows it: as the controller said it', ['RoutePolicy/default/a: RoutePolicy a and b both apply to reviews.default: a wins'], ['RoutePolicy/default/a: RoutePolicy a and b both apply to reviews.default: a wins']],
    ['a local warning the controller resolved (a stored DestinationRule) is not printed', [], []],
  ])('%s', (_name, fromController, expected) => {
    expect(appliedWarnings(fromController, local)).toEqual(expected);
  });
});
