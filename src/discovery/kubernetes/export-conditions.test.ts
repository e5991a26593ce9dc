import { desiredConditions, mergeConditions, type ExportStanding } from './export-conditions.js';

const base: ExportStanding = { namespace: 'shop', name: 'cart', generation: 2, exported: true };
const T0 = new Date('2030-01-01T00:00:00Z');
const T1 = new Date('2030-01-01T00:05:00Z');

function summary(standing: ExportStanding): string[] {
  return desiredConditions(standing).map((c) => `${c.type}=${c.status}/${c.reason}`);
}

describe('desiredConditions', () => {
  it.each([
    ['valid, no verdict yet', base, ['Valid=True/Valid', 'Ready=Unknown/Pending', 'Conflict=Unknown/Pending']],
    ['accepted', { ...base, verdict: { accepted: true, reason: '' } }, ['Valid=True/Valid', 'Ready=True/Exported', 'Conflict=False/NoConflict']],
    [
      'port conflict',
      { ...base, verdict: { accepted: false, reason: 'port "http" is http 80/http here but http 80/grpc in us-west, which exported the service first' } },
      ['Valid=True/Valid', 'Ready=False/Conflict', 'Conflict=True/PortConflict'],
    ],
    ['rejected otherwise', { ...base, verdict: { accepted: false, reason: 'exports[0].ports: at least one port is required' } }, ['Valid=True/Valid', 'Ready=False/Rejected', 'Conflict=False/NoConflict']],
    ['invalid, not exported', { ...base, exported: false, invalid: { reason: 'ServiceNotFound', message: 'Service shop/cart not found' } }, ['Valid=False/ServiceNotFound', 'Ready=False/NotExported', 'Conflict=Unknown/NotExported']],
    [
      'bad edit, last good exported and accepted',
      { ...base, invalid: { reason: 'InvalidConsumers', message: 'bad' }, verdict: { accepted: true, reason: '' } },
      ['Valid=False/InvalidConsumers', 'Ready=True/Exported', 'Conflict=False/NoConflict'],
    ],
  ])('%s', (_what, standing, expected) => {
    expect(summary(standing as ExportStanding)).toEqual(expected);
  });

  it('carries the generation it was computed from', () => {
    expect(desiredConditions(base).every((c) => c.observedGeneration === 2)).toBe(true);
  });
});

describe('mergeConditions', () => {
  it('writes all three on an empty status, stamped now', () => {
    const { conditions, changed } = mergeConditions(undefined, desiredConditions(base), T0);
    expect(changed).toBe(true);
    expect(conditions.map((c) => [c.type, c.lastTransitionTime])).toEqual([
      ['Valid', '2030-01-01T00:00:00Z'],
      ['Ready', '2030-01-01T00:00:00Z'],
      ['Conflict', '2030-01-01T00:00:00Z'],
    ]);
  });

  it('is unchanged when nothing but the order differs', () => {
    const first = mergeConditions(undefined, desiredConditions(base), T0).conditions;
    expect(mergeConditions([...first].reverse(), desiredConditions(base), T1).changed).toBe(false);
  });

  it('moves lastTransitionTime only for conditions whose status changed, and keeps foreign conditions', () => {
    const foreign = { type: 'Synced', status: 'True', reason: 'X', message: '', lastTransitionTime: '2020-01-01T00:00:00Z' };
    const first = mergeConditions([foreign], desiredConditions(base), T0).conditions;
    const { conditions, changed } = mergeConditions(first, desiredConditions({ ...base, verdict: { accepted: true, reason: '' } }), T1);
    expect(changed).toBe(true);
    const byType = Object.fromEntries(conditions.map((c) => [c.type, c]));
    expect(byType.Synced).toEqual(foreign);
    expect(byType.Valid?.lastTransitionTime).toBe('2030-01-01T00:00:00Z');
    expect(byType.Ready?.lastTransitionTime).toBe('2030-01-01T00:05:00Z');
    expect(byType.Conflict?.lastTransitionTime).toBe('2030-01-01T00:05:00Z');
  });

  it('rewrites when only a message or the generation changed, keeping the transition time', () => {
    const first = mergeConditions(undefined, desiredConditions(base), T0).conditions;
    const { conditions, changed } = mergeConditions(first, desiredConditions({ ...base, generation: 3 }), T1);
    expect(changed).toBe(true);
    expect(conditions.every((c) => c.lastTransitionTime === '2030-01-01T00:00:00Z' && c.observedGeneration === 3)).toBe(true);
  });

  it('ignores malformed existing conditions', () => {
    const { conditions, changed } = mergeConditions(['junk', { status: 'True' }, null], desiredConditions(base), T0);
    expect(changed).toBe(true);
    expect(conditions).toHaveLength(3);
  });
});
