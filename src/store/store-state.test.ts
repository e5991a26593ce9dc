import { StoreState, type MutationRecord, type RecordSink, type Table } from './store-state.js';

/** A sink whose batches wait until the test lets each one through (or fails it). */
class GatedSink implements RecordSink {
  readonly batches: MutationRecord[][] = [];
  private gates: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private arrived: Array<() => void> = [];

  persist(records: readonly MutationRecord[]): Promise<void> {
    this.batches.push([...records]);
    for (const wake of this.arrived.splice(0)) wake();
    return new Promise((resolve, reject) => this.gates.push({ resolve, reject }));
  }

  async afterApply(): Promise<void> {}

  /** Resolves once `count` batches reached the sink. */
  async batchCount(count: number): Promise<void> {
    while (this.batches.length < count) await new Promise<void>((resolve) => this.arrived.push(resolve));
  }

  pass(): void {
    this.gates.shift()?.resolve();
  }

  fail(error: Error): void {
    this.gates.shift()?.reject(error);
  }
}

function setup(): { state: StoreState; sink: GatedSink; items: Table<number> } {
  const state = new StoreState(100, () => undefined);
  const items = state.table<number>('items', { lifetime: 'durable' });
  const sink = new GatedSink();
  state.setSink(sink);
  return { state, sink, items };
}

describe('StoreState, the one funnel of every mutation', () => {
  it('makes a write visible only once the sink persisted it, and batches the writes that arrived meanwhile', async () => {
    const { state, sink, items } = setup();
    const first = state.mutate((tx) => tx.put(items, 'a', 1));
    await sink.batchCount(1);
    expect(items.rows.get('a')).toBeUndefined();
    // Decided on top of the pending write: it sees it.
    const second = state.mutate((tx) => tx.put(items, 'b', ((tx.get(items, 'a') as number) ?? 0) + 1));
    const third = state.mutate((tx) => tx.put(items, 'c', 3));
    sink.pass();
    await first;
    expect(items.rows.get('a')).toBe(1);
    expect(items.rows.has('b')).toBe(false);
    await sink.batchCount(2);
    expect(sink.batches[1]).toHaveLength(2);
    sink.pass();
    await Promise.all([second, third]);
    expect([...items.rows]).toEqual([['a', 1], ['b', 2], ['c', 3]]);
  });

  it('refuses a batch the sink could not persist together with everything decided on top of it, and shows none of it', async () => {
    const { state, sink, items } = setup();
    const first = state.mutate((tx) => tx.put(items, 'a', 1));
    await sink.batchCount(1);
    const onTop = state.mutate((tx) => tx.put(items, 'b', (tx.get(items, 'a') as number) + 1));
    sink.fail(new Error('ENOSPC'));
    await expect(first).rejects.toThrow('ENOSPC');
    await expect(onTop).rejects.toThrow('ENOSPC');
    expect(items.rows.size).toBe(0);
    // The staged rows are gone too: the next mutation starts from what is committed.
    const next = state.mutate((tx) => tx.put(items, 'c', tx.get(items, 'a') ?? 0));
    await sink.batchCount(2);
    expect(sink.batches[1]?.[0]?.writes).toEqual([['items', 'c', 0]]);
    sink.pass();
    await next;
    expect([...items.rows]).toEqual([['c', 0]]);
  });

  it('answers a read-only mutation that saw pending writes only once they are persisted, and again if they were not', async () => {
    const { state, sink, items } = setup();
    const write = state.mutate((tx) => tx.put(items, 'a', 1));
    await sink.batchCount(1);
    let answered: number | undefined;
    const read = state.mutate((tx) => tx.get(items, 'a') ?? 0).then((value) => (answered = value));
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBeUndefined();
    sink.fail(new Error('EIO'));
    await expect(write).rejects.toThrow('EIO');
    // Asked again against what is committed.
    await read;
    expect(answered).toBe(0);
  });

  it('leaves nothing behind of a mutation that throws', async () => {
    const { state, sink, items } = setup();
    await expect(
      state.mutate((tx) => {
        tx.put(items, 'a', 1);
        throw new Error('conflict');
      }),
    ).rejects.toThrow('conflict');
    const after = state.mutate((tx) => tx.get(items, 'a'));
    await expect(after).resolves.toBeUndefined();
    expect(sink.batches).toEqual([]);
  });
});
