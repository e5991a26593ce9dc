import { Writable } from 'node:stream';
import { duplicateKeys } from '../../test/support/json-keys.js';
import { createRootLogger, oneValuePerKey, type Logger } from './logger.js';

/** A root logger writing to memory; `lines()` waits for pino's asynchronous writes. */
function capture(base: Record<string, unknown> = { cluster: 'eu-west' }): { log: Logger; lines: () => Promise<string[]> } {
  const written: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const log = createRootLogger({ name: 'fedgate-gateway', base, level: 'debug', destination });
  return { log, lines: () => new Promise((resolve) => setImmediate(() => resolve(written))) };
}

describe('oneValuePerKey', () => {
  const bound = new Map<string, unknown>([['cluster', 'eu-west'], ['component', 'health']]);
  it.each<[string, unknown[], unknown[]]>([
    ['no bound key: the same arguments', [{ peer: 'us-east' }, 'm'], [{ peer: 'us-east' }, 'm']],
    ['a bound key with the same value: dropped', [{ cluster: 'eu-west', misses: 3 }, 'm'], [{ misses: 3 }, 'm']],
    ['a bound key with another value: kept under conflicting', [{ cluster: 'us-east', misses: 3 }, 'm'], [{ misses: 3, conflicting: { cluster: 'us-east' } }, 'm']],
    ['keys pino writes itself', [{ level: 'x', time: 1, msg: 'y' }, 'm'], [{ conflicting: { level: 'x', time: 1, msg: 'y' } }, 'm']],
    ['msg without a message string is the message', [{ msg: 'y' }], [{ msg: 'y' }]],
    ['an Error is left to pino', [new Error('boom')], [new Error('boom')]],
    ['a plain message', ['m'], ['m']],
  ])('%s', (_name, args, expected) => {
    expect(oneValuePerKey(bound, args)).toEqual(expected);
  });

  it('does not change the caller\'s object', () => {
    const object = { cluster: 'us-east' };
    oneValuePerKey(bound, [object, 'm']);
    expect(object).toEqual({ cluster: 'us-east' });
  });
});

describe('createRootLogger: one value per key on every line', () => {
  it('a call that repeats a root binding keeps the root value and the call\'s under conflicting', async () => {
    const { log, lines } = capture();
    log.child({ component: 'health' }).warn({ cluster: 'us-east', misses: 3 }, 'peer gateway unhealthy; failing over');
    const [line] = await lines();
    expect(duplicateKeys(line as string)).toEqual([]);
    expect(JSON.parse(line as string)).toMatchObject({ cluster: 'eu-west', component: 'health', misses: 3, conflicting: { cluster: 'us-east' }, msg: 'peer gateway unhealthy; failing over' });
  });

  it('a child binding a key again: the same value is dropped, another value is refused and reported', async () => {
    const { log, lines } = capture();
    const same = log.child({ component: 'pool', cluster: 'eu-west' });
    same.info('same');
    const other = same.child({ cluster: 'us-east', peer: 'us-east' });
    other.info('other');
    other.child({ component: 'nested' }).info('nested');
    const written = await lines();
    for (const line of written) expect(duplicateKeys(line)).toEqual([]);
    const parsed = written.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((p) => [p.msg, p.cluster, p.component, p.peer])).toEqual([
      ['same', 'eu-west', 'pool', undefined],
      ['log binding refused: the key is already bound to another value', 'eu-west', 'pool', 'us-east'],
      ['other', 'eu-west', 'pool', 'us-east'],
      ['log binding refused: the key is already bound to another value', 'eu-west', 'pool', 'us-east'],
      ['nested', 'eu-west', 'pool', 'us-east'],
    ]);
    expect(parsed[1]?.refusedBindings).toEqual({ cluster: 'us-east' });
    expect(parsed[3]?.refusedBindings).toEqual({ component: 'nested' });
  });

  it('redaction still applies', async () => {
    const { log, lines } = capture();
    log.info({ token: 'secret-token', nested: { password: 'p' } }, 'joined');
    const [line] = await lines();
    expect(line).not.toContain('secret-token');
    expect(JSON.parse(line as string)).toMatchObject({ token: '[redacted]', nested: { password: '[redacted]' } });
  });
});

describe('duplicateKeys', () => {
  it.each<[string, string, string[]]>([
    ['none', '{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}', []],
    ['at the top', '{"cluster":"eu-west","x":1,"cluster":"us-east"}', ['cluster']],
    ['nested', '{"a":{"b":1,"b":2}}', ['a.b']],
    ['in an array element', '{"a":[{"b":1,"b":2}]}', ['a[0].b']],
    ['escaped quotes in strings', '{"a":"x\\"y","a\\"":1,"b":"}{"}', []],
  ])('%s', (_name, json, expected) => {
    expect(duplicateKeys(json)).toEqual(expected);
  });
});
