/**
 * The open streams of one HTTP/2 connection, by stream ID: an open-addressing table (linear
 * probing, backward-shift deletion) over two arrays instead of a `Map`.
 *
 * Why not a `Map`: a connection lives for hours and inserts and deletes one entry per request.
 * Each time V8 rehashes a `Map`'s backing table, the old table keeps a link to the new one (for
 * live iterators) and keeps its entries. Once one of those tables has been promoted to the old
 * generation, every later table, and every stream and request it holds, is reachable from it
 * until the next full mark-compact: each scavenge copies and promotes them all. `npm run
 * bench:streams` (256 open streams, one set and one delete per request): scavenges of 40 ms on
 * average with a `Map`, 2.7 ms with this table; in the gateways under load they had gone from
 * about 2 ms to 20–50 ms and stayed there (docs/perf-notes/dataplane.md, 2026-12-07).
 */
export class StreamTable<V> {
  private ids: Int32Array;
  private entries: (V | undefined)[];
  private mask: number;
  private count = 0;

  constructor(initialCapacity = 16) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.ids = new Int32Array(capacity);
    this.entries = new Array<V | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    const slot = this.find(id);
    return slot < 0 ? undefined : this.entries[slot];
  }

  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  /** Stream IDs are positive 31-bit integers; 0 (the connection) is never a stream. */
  set(id: number, value: V): this {
    if (!Number.isInteger(id) || id <= 0 || id > 0x7fffffff) throw new RangeError(`stream ID ${id} is not in 1..2^31-1`);
    let slot = this.home(id);
    for (;;) {
      const current = this.ids[slot] as number;
      if (current === id) {
        this.entries[slot] = value;
        return this;
      }
      if (current === 0) break;
      slot = (slot + 1) & this.mask;
    }
    this.ids[slot] = id;
    this.entries[slot] = value;
    this.count += 1;
    if (this.count * 2 > this.ids.length) this.grow();
    return this;
  }

  delete(id: number): boolean {
    let hole = this.find(id);
    if (hole < 0) return false;
    this.ids[hole] = 0;
    this.entries[hole] = undefined;
    this.count -= 1;
    // Backward shift: move later entries of the same probe run into the hole, so lookups never
    // stop early at it (no tombstones to clean up).
    let next = (hole + 1) & this.mask;
    while (this.ids[next] !== 0) {
      const home = this.home(this.ids[next] as number);
      const distanceToHole = (hole - home) & this.mask;
      const distanceToNext = (next - home) & this.mask;
      if (distanceToHole < distanceToNext) {
        this.ids[hole] = this.ids[next] as number;
        this.entries[hole] = this.entries[next];
        this.ids[next] = 0;
        this.entries[next] = undefined;
        hole = next;
      }
      next = (next + 1) & this.mask;
    }
    return true;
  }

  /**
   * Visits every entry in place, without a snapshot: `visit` must not add or delete entries (collect
   * what to change, then change it). For walks on a peer's say-so (a SETTINGS frame), where a
   * snapshot per walk would be the peer's to multiply.
   */
  forEach(visit: (value: V) => void): void {
    const ids = this.ids;
    const entries = this.entries;
    for (let slot = 0; slot < ids.length; slot++) if (ids[slot] !== 0) visit(entries[slot] as V);
  }

  /** A snapshot: callers may delete while they walk it. */
  values(): V[] {
    const out: V[] = [];
    for (let slot = 0; slot < this.ids.length; slot++) if (this.ids[slot] !== 0) out.push(this.entries[slot] as V);
    return out;
  }

  clear(): void {
    this.ids.fill(0);
    this.entries.fill(undefined);
    this.count = 0;
  }

  private home(id: number): number {
    // One side's stream IDs share their parity: without the shift, half the slots would stay empty.
    return (id >>> 1) & this.mask;
  }

  private find(id: number): number {
    if (id <= 0) return -1;
    let slot = this.home(id);
    for (;;) {
      const current = this.ids[slot] as number;
      if (current === id) return slot;
      if (current === 0) return -1;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const ids = this.ids;
    const entries = this.entries;
    const capacity = ids.length * 2;
    this.ids = new Int32Array(capacity);
    this.entries = new Array<V | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    this.count = 0;
    for (let slot = 0; slot < ids.length; slot++) if (ids[slot] !== 0) this.set(ids[slot] as number, entries[slot] as V);
  }
}
