import { failure, type Outcome } from './outcome.js';
import { compose, type Layer } from './pipeline.js';

describe('compose', () => {
  it('runs layers outermost first around the terminal, each able to answer without calling on', async () => {
    const trace: string[] = [];
    const layer =
      (name: string): Layer<{ stop?: string }> =>
      (next) =>
      async (ctx) => {
        trace.push(`${name} in`);
        if (ctx.stop === name) return failure('denied', `stopped by ${name}`);
        const outcome = await next(ctx);
        trace.push(`${name} out`);
        return outcome;
      };
    const terminal = async (): Promise<Outcome> => {
      trace.push('terminal');
      return failure('no-route', 'end of the line');
    };
    const handler = compose([layer('a'), layer('b')], terminal);
    expect(await handler({})).toEqual(failure('no-route', 'end of the line'));
    expect(trace).toEqual(['a in', 'b in', 'terminal', 'b out', 'a out']);
    trace.length = 0;
    expect(await handler({ stop: 'b' })).toEqual(failure('denied', 'stopped by b'));
    expect(trace).toEqual(['a in', 'b in', 'a out']);
    expect(compose([], terminal)).toBe(terminal);
  });
});
