import { RequestState } from './request.js';

describe('RequestState', () => {
  it('ends once, with the first reason, giving up the attempt in flight', () => {
    const state = new RequestState();
    const aborted: string[] = [];
    state.onAbort((reason) => aborted.push(reason));
    expect(state.ended).toBeUndefined();
    state.end('timeout');
    state.end('client-closed');
    expect(state.ended).toBe('timeout');
    expect(aborted).toEqual(['timeout']);
  });

  it('a per-try abort gives up the attempt but leaves the request running; a cleared abort is not called', () => {
    const state = new RequestState();
    const aborted: string[] = [];
    state.onAbort((reason) => aborted.push(reason));
    state.abortAttempt('timeout');
    expect(state.ended).toBeUndefined();
    state.clearAbort();
    state.abortAttempt('timeout');
    state.end('client-closed');
    expect(aborted).toEqual(['timeout']);
    expect(state.ended).toBe('client-closed');
    expect(state.attempts).toBe(1);
    expect(state.tried.size).toBe(0);
  });
});
