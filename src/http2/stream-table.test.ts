import { StreamTable } from './stream-table.js';

/** A deterministic generator, so a failing sequence can be replayed. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('StreamTable', () => {
  it('stores, finds, replaces and deletes entries by stream ID', () => {
    const table = new StreamTable<string>();
    table.set(1, 'a').set(3, 'b').set(5, 'c');
    expect(table.size).toBe(3);
    expect(table.get(3)).toBe('b');
    expect(table.has(5)).toBe(true);
    table.set(3, 'B');
    expect(table.size).toBe(3);
    expect(table.get(3)).toBe('B');
    expect(table.delete(3)).toBe(true);
    expect(table.delete(3)).toBe(false);
    expect(table.get(3)).toBeUndefined();
    expect(table.has(3)).toBe(false);
    expect(table.size).toBe(2);
    expect(table.get(0)).toBeUndefined();
    expect(table.get(7)).toBeUndefined();
    expect(table.values().sort()).toEqual(['a', 'c']);
  });

  it('refuses IDs outside 1..2^31-1 rather than storing them where lookups cannot find them', () => {
    const table = new StreamTable<string>();
    expect(() => table.set(0, 'x')).toThrow(/stream ID 0/);
    expect(() => table.set(-1, 'x')).toThrow(RangeError);
    expect(() => table.set(2 ** 31, 'x')).toThrow(RangeError);
    expect(() => table.set(1.5, 'x')).toThrow(RangeError);
    table.set(2 ** 31 - 1, 'max');
    expect(table.get(2 ** 31 - 1)).toBe('max');
    expect(table.size).toBe(1);
  });

  it('keeps every entry reachable when deletions fall inside probe runs that wrap around the end', () => {
    // Capacity 16, home slot (id >>> 1) & 15: IDs 29, 61, 93 and 125 all start at slot 14, so
    // their run wraps past slot 15 to 0 and 1; 31 starts at 15 and is pushed behind them.
    const table = new StreamTable<number>();
    for (const id of [29, 61, 93, 125, 31]) table.set(id, id);
    expect(table.delete(61)).toBe(true);
    for (const id of [29, 93, 125, 31]) expect(table.get(id)).toBe(id);
    expect(table.delete(29)).toBe(true);
    for (const id of [93, 125, 31]) expect(table.get(id)).toBe(id);
    table.set(157, 157);
    expect(table.delete(125)).toBe(true);
    for (const id of [93, 31, 157]) expect(table.get(id)).toBe(id);
    expect(table.values().sort((a, b) => a - b)).toEqual([31, 93, 157]);
  });

  it('grows past its initial capacity without losing entries', () => {
    const table = new StreamTable<number>();
    for (let id = 1; id < 2000; id += 2) table.set(id, id * 10);
    expect(table.size).toBe(1000);
    for (let id = 1; id < 2000; id += 2) expect(table.get(id)).toBe(id * 10);
  });

  it('agrees with a Map over a long random run of the way a connection uses it', () => {
    // Increasing odd IDs, a bounded number open, closed out of order, a few long-lived streams
    // that stay while the IDs around them advance far past the table's capacity.
    const random = lcg(42);
    const table = new StreamTable<number>();
    const reference = new Map<number, number>();
    const open: number[] = [];
    let nextId = 1;
    for (let step = 0; step < 200_000; step++) {
      if (open.length < 300 && (open.length === 0 || random() < 0.52)) {
        const id = nextId;
        nextId += 2;
        table.set(id, step);
        reference.set(id, step);
        open.push(id);
      } else {
        // Mostly the oldest streams end first, but any may.
        const index = random() < 0.7 ? Math.floor(random() * Math.min(open.length, 8)) : Math.floor(random() * open.length);
        const keepForever = open[index] !== undefined && open[index]! < 40;
        if (keepForever) continue;
        const [id] = open.splice(index, 1) as [number];
        expect(table.delete(id)).toBe(true);
        reference.delete(id);
      }
      if (step % 997 === 0) {
        expect(table.size).toBe(reference.size);
        for (const [id, value] of reference) expect(table.get(id)).toBe(value);
        expect(table.get(nextId)).toBeUndefined();
      }
    }
    expect(table.values().sort((a, b) => a - b)).toEqual([...reference.values()].sort((a, b) => a - b));
    table.clear();
    expect(table.size).toBe(0);
    expect(table.values()).toEqual([]);
    expect(table.get(open[0] ?? 1)).toBeUndefined();
  });

  it('lets callers delete while walking a snapshot of the values', () => {
    const table = new StreamTable<number>();
    for (let id = 1; id < 100; id += 2) table.set(id, id);
    for (const id of table.values()) table.delete(id);
    expect(table.size).toBe(0);
  });

  it('visits every entry in place with forEach, after growth and deletions', () => {
    const table = new StreamTable<number>();
    for (let id = 1; id < 2000; id += 2) table.set(id, id * 10);
    for (let id = 1; id < 2000; id += 6) table.delete(id);
    const seen: number[] = [];
    table.forEach((value) => seen.push(value));
    expect(seen.sort((a, b) => a - b)).toEqual(table.values().sort((a, b) => a - b));
    expect(seen).toHaveLength(table.size);
  });
});
