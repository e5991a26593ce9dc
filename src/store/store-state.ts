import type { Change, ResourceType } from '../model/catalog.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/**
 * Whether a table outlives the process. A durable store journals the writes of durable tables;
 * an ephemeral table starts empty after every restart.
 */
export type Lifetime = 'durable' | 'ephemeral';

/** A put (`[table, key, value]`) or a delete (`[table, key]`). */
export type TableWrite = readonly [table: string, key: string] | readonly [table: string, key: string, value: unknown];

/**
 * The result of one mutation, as a durable store journals and replays it: the rows it wrote, not
 * the operation that decided them, so a replay never re-draws an epoch UUID, a fencing token or a
 * revision.
 */
export interface MutationRecord {
  writes: TableWrite[];
  /** Catalog changes (one revision); they write their table and enter the change log. */
  changes: Change[];
  /** The change log starts over before `changes` (a restore after state loss). */
  resetLog: boolean;
  /** Hand it to the sink although it wrote nothing: the sink's turn is what is wanted (a requested compaction). */
  force: boolean;
}

/** Where a durable store sends committed mutations before anyone may see them. */
export interface RecordSink {
  /** Makes the records durable, in order, before resolving; rejects when they may not be. */
  persist(records: readonly MutationRecord[]): Promise<void>;
  /** Called after a persisted batch became visible (the point to compact a journal). */
  afterApply(): Promise<void>;
}

const GONE: unique symbol = Symbol('gone');
type Staged<V> = { value: V | typeof GONE; tx: number };

/**
 * One keyed table of the store. `rows` holds what is committed (durable, when the store is), and
 * is what readers see; mutations read through a `Transaction`, which also sees the writes of
 * mutations still on their way to disk. Rows are never changed in place: a write puts a new value.
 */
export class Table<V> {
  /** Committed rows, in insertion order. */
  readonly rows = new Map<string, V>();
  private readonly staged = new Map<string, Staged<V>>();
  private readonly groups: Map<string, Set<string>> | undefined;

  constructor(
    readonly name: string,
    readonly lifetime: Lifetime,
    /** The catalog resource type whose changes write this table. */
    readonly changeType: ResourceType | undefined,
    private readonly groupOf: ((key: string) => string) | undefined,
  ) {
    this.groups = groupOf ? new Map() : undefined;
  }

  /** Committed rows of one group (tables made with `groupOf`). */
  group(group: string): V[] {
    const keys = this.groups?.get(group);
    if (!keys) return [];
    return [...keys].map((key) => this.rows.get(key) as V);
  }

  headGet(key: string): V | undefined {
    const staged = this.staged.get(key);
    if (staged) return staged.value === GONE ? undefined : staged.value;
    return this.rows.get(key);
  }

  headEntries(group?: string): Array<[string, V]> {
    const out: Array<[string, V]> = [];
    const committedKeys = group === undefined ? this.rows.keys() : (this.groups?.get(group) ?? new Set<string>()).values();
    for (const key of committedKeys) if (!this.staged.has(key)) out.push([key, this.rows.get(key) as V]);
    for (const [key, staged] of this.staged) {
      if (staged.value === GONE) continue;
      if (group !== undefined && this.groupOf?.(key) !== group) continue;
      out.push([key, staged.value]);
    }
    return out;
  }

  headSize(): number {
    return this.staged.size === 0 ? this.rows.size : this.headEntries().length;
  }

  stage(key: string, value: V | typeof GONE, tx: number): Staged<V> | undefined {
    const previous = this.staged.get(key);
    this.staged.set(key, { value, tx });
    return previous;
  }

  unstage(key: string, previous: Staged<V> | undefined): void {
    if (previous) this.staged.set(key, previous);
    else this.staged.delete(key);
  }

  /** Writes a committed row; the staged write of the same mutation (or an older one) is done with. */
  apply(key: string, value: V | undefined, tx: number): void {
    if (value === undefined) {
      if (this.rows.delete(key) && this.groups) {
        const group = (this.groupOf as (key: string) => string)(key);
        const keys = this.groups.get(group);
        keys?.delete(key);
        if (keys?.size === 0) this.groups.delete(group);
      }
    } else {
      this.rows.set(key, value);
      if (this.groups) {
        const group = (this.groupOf as (key: string) => string)(key);
        let keys = this.groups.get(group);
        if (!keys) this.groups.set(group, (keys = new Set()));
        keys.add(key);
      }
    }
    const staged = this.staged.get(key);
    if (staged && staged.tx <= tx) this.staged.delete(key);
  }

  discardStaged(): void {
    this.staged.clear();
  }

  clear(): void {
    this.rows.clear();
    this.staged.clear();
    this.groups?.clear();
  }
}

/**
 * The catalog change log (committed only): the window of recent changes watchers resume from.
 * Never holds half a revision.
 */
export class ChangeLog {
  private entries: Change[] = [];
  private start = 0;

  constructor(readonly maxLength: number) {}

  get length(): number {
    return this.entries.length - this.start;
  }

  first(): Change | undefined {
    return this.entries[this.start];
  }

  all(): Change[] {
    return this.entries.slice(this.start);
  }

  append(changes: readonly Change[]): void {
    for (const change of changes) this.entries.push(change);
    if (this.length <= this.maxLength) return;
    const cut = this.start + this.length - this.maxLength;
    const lastDropped = (this.entries[cut - 1] as Change).revision;
    // Never keep half a revision: a watcher resuming there would miss the rest of it.
    let start = cut;
    while (start < this.entries.length && (this.entries[start] as Change).revision === lastDropped) start++;
    this.start = start;
    // Copy the window down now and then, not on every append: trimming stays O(1) amortised.
    if (this.start > 1024 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  /** Changes after `revision`, oldest first. */
  since(revision: number): Change[] {
    let low = this.start;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.entries[middle] as Change).revision <= revision) low = middle + 1;
      else high = middle;
    }
    return this.entries.slice(low);
  }

  reset(): void {
    this.entries = [];
    this.start = 0;
  }
}

/**
 * One mutation in progress. Reads see the committed rows plus every write still on its way to
 * disk; writes are staged (visible to later mutations only) and recorded. A mutation that throws
 * leaves nothing behind.
 */
export class Transaction {
  readonly record: MutationRecord = { writes: [], changes: [], resetLog: false, force: false };
  private readonly undo: Array<() => void> = [];

  constructor(
    readonly id: number,
    private readonly tableOf: (type: ResourceType) => Table<unknown>,
  ) {}

  get<V>(table: Table<V>, key: string): V | undefined {
    return table.headGet(key);
  }

  has<V>(table: Table<V>, key: string): boolean {
    return table.headGet(key) !== undefined;
  }

  /** Every row (or every row of one group), as a list: writing while walking it is safe. */
  entries<V>(table: Table<V>, group?: string): Array<[string, V]> {
    return table.headEntries(group);
  }

  size<V>(table: Table<V>): number {
    return table.headSize();
  }

  put<V>(table: Table<V>, key: string, value: V): void {
    const previous = table.stage(key, value, this.id);
    this.undo.push(() => table.unstage(key, previous));
    this.record.writes.push([table.name, key, value]);
  }

  /** Deletes a row; false (and nothing recorded) when there was none. */
  delete<V>(table: Table<V>, key: string): boolean {
    if (table.headGet(key) === undefined) return false;
    const previous = table.stage(key, GONE, this.id);
    this.undo.push(() => table.unstage(key, previous));
    this.record.writes.push([table.name, key]);
    return true;
  }

  /** A catalog change: writes its table and enters the change log. */
  change(change: Change): void {
    const table = this.tableOf(change.type);
    const previous = table.stage(change.key, change.op === 'put' ? change.value : GONE, this.id);
    this.undo.push(() => table.unstage(change.key, previous));
    this.record.changes.push(change);
  }

  resetLog(): void {
    this.record.resetLog = true;
  }

  force(): void {
    this.record.force = true;
  }

  get empty(): boolean {
    const { writes, changes, resetLog, force } = this.record;
    return writes.length === 0 && changes.length === 0 && !resetLog && !force;
  }

  rollback(): void {
    for (const step of this.undo.reverse()) step();
    this.undo.length = 0;
  }
}

interface Queued {
  tx: Transaction;
  resolve: () => void;
  reject: (error: unknown) => void;
  settle: (persisted: boolean) => void;
}

/**
 * The state of a MemoryStore and the one funnel every mutation goes through. Without a sink a
 * mutation is committed at once. With one (JournalStore), mutations are queued in order, handed to
 * the sink in batches (one fsync for every mutation that arrived meanwhile), and become visible to
 * readers and watchers only once persisted; a batch the sink refuses is undone together with every
 * mutation staged on top of it, and all of them are rejected.
 */
export class StoreState {
  readonly changeLog: ChangeLog;
  private readonly tables = new Map<string, Table<unknown>>();
  private readonly byChangeType = new Map<ResourceType, Table<unknown>>();
  private sink: RecordSink | undefined;
  private queue: Queued[] = [];
  /** The running flush loop (batches and what the sink does after each). */
  private flushing: Promise<void> | undefined;
  private txCounter = 0;
  /** Settles with the fate of the last queued mutation (true: persisted). */
  private tail: Promise<boolean> | undefined;

  constructor(
    changeLogLength: number,
    /** Called whenever committed state changed (watchers wake up). */
    private readonly onApplied: () => void,
  ) {
    this.changeLog = new ChangeLog(changeLogLength);
  }

  table<V>(name: string, options: { lifetime: Lifetime; changeType?: ResourceType; groupOf?: (key: string) => string }): Table<V> {
    const table = new Table<V>(name, options.lifetime, options.changeType, options.groupOf);
    this.tables.set(name, table as Table<unknown>);
    if (options.changeType) this.byChangeType.set(options.changeType, table as Table<unknown>);
    return table;
  }

  allTables(): Table<unknown>[] {
    return [...this.tables.values()];
  }

  tableNamed(name: string): Table<unknown> | undefined {
    return this.tables.get(name);
  }

  setSink(sink: RecordSink | undefined): void {
    this.sink = sink;
  }

  /**
   * Runs `fn` against the current state and commits what it wrote. `fn` is synchronous, so no
   * other mutation interleaves with it. A mutation that wrote nothing (or threw) but may have read
   * writes not yet persisted answers only once those are; if they fail, it runs again.
   */
  async mutate<T>(fn: (tx: Transaction) => T, options: { force?: boolean } = {}): Promise<T> {
    for (;;) {
      const observed = this.tail;
      const tx = new Transaction(++this.txCounter, (type) => this.tableFor(type));
      let value: T;
      try {
        value = fn(tx);
        if (options.force) tx.force();
      } catch (error) {
        tx.rollback();
        if (observed === undefined || (await observed)) throw error;
        continue;
      }
      if (!tx.empty) {
        if (!this.sink) {
          this.apply(tx.record, tx.id);
          this.onApplied();
          return value;
        }
        await this.enqueue(tx);
        return value;
      }
      if (observed === undefined || (await observed)) return value;
    }
  }

  /** Applies a record straight to the committed rows (replaying a journal at start). */
  replay(record: MutationRecord): void {
    this.apply(record, 0);
  }

  /** Resolves once every mutation queued so far was persisted or refused and the sink is idle. */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /** Empties every table and the change log (before loading from disk again). */
  clear(): void {
    for (const table of this.tables.values()) table.clear();
    this.changeLog.reset();
  }

  /** The table a catalog change of `type` writes. */
  tableFor(type: ResourceType): Table<unknown> {
    const table = this.byChangeType.get(type);
    if (!table) throw new FedgateError(ErrorCodes.INTERNAL, `no table holds ${type} changes`);
    return table;
  }

  private apply(record: MutationRecord, tx: number): void {
    for (const write of record.writes) {
      const table = this.tables.get(write[0]);
      if (!table) throw new FedgateError(ErrorCodes.INTERNAL, `unknown table "${write[0]}"`);
      table.apply(write[1], write.length === 3 ? write[2] : undefined, tx);
    }
    if (record.resetLog) this.changeLog.reset();
    for (const change of record.changes) this.tableFor(change.type).apply(change.key, change.op === 'put' ? change.value : undefined, tx);
    this.changeLog.append(record.changes);
  }

  private enqueue(tx: Transaction): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settle!: (persisted: boolean) => void;
      this.tail = new Promise<boolean>((done) => (settle = done));
      this.queue.push({ tx, resolve, reject, settle });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      // Queued after the loop saw an empty queue, before it finished.
      if (this.queue.length > 0) this.kick();
    });
  }

  private async flush(): Promise<void> {
    const sink = this.sink as RecordSink;
    while (this.queue.length > 0) {
      // One turn of the event loop lets every writer whose previous write just resolved queue
      // its next one, so they share the next fsync (group commit).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = this.queue;
      this.queue = [];
      try {
        await sink.persist(batch.map((entry) => entry.tx.record));
      } catch (error) {
        // Everything queued meanwhile was decided on top of this batch: none of it stands.
        const dropped = [...batch, ...this.queue];
        this.queue = [];
        this.tail = undefined;
        for (const table of this.tables.values()) table.discardStaged();
        for (const entry of dropped) {
          entry.settle(false);
          entry.reject(error);
        }
        continue;
      }
      for (const entry of batch) this.apply(entry.tx.record, entry.tx.id);
      if (this.queue.length === 0) this.tail = undefined;
      this.onApplied();
      for (const entry of batch) {
        entry.settle(true);
        entry.resolve();
      }
      await sink.afterApply().catch(() => undefined);
    }
  }
}
