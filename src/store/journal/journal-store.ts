import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ErrorCodes, StoreError, errorMessage } from '../../core/errors.js';
import { createSilentLogger, type Logger } from '../../core/logger.js';
import type { Change } from '../../model/catalog.js';
import { MemoryStore, type MemoryStoreOptions } from '../memory-store.js';
import type { MutationRecord, RecordSink, Transaction } from '../store-state.js';
import { DataDirLock, LOCK_REFRESH_MS } from './data-dir-lock.js';
import { diskError, errnoOf } from './disk-error.js';
import {
  JOURNAL_FORMAT,
  SNAPSHOT_FORMAT,
  checkHeader,
  damagedFile,
  decodeRecord,
  encodeFrame,
  encodeRecord,
  headerPayload,
  laterBatchAfter,
  readFrames,
} from './journal-format.js';

export interface JournalStoreOptions extends MemoryStoreOptions {
  /** Holds the journal, its snapshot and the lock file; created (mode 0700) when missing. */
  dataDir: string;
  /**
   * The journal is rewritten as a snapshot once it holds this many bytes, and at least as many as
   * the last snapshot (so rewriting costs O(1) per byte written, amortised).
   */
  compactAfterBytes?: number;
  log?: Logger;
}

export const JOURNAL_FILE = 'store.journal';
export const SNAPSHOT_FILE = 'store.snapshot';
const TEMPORARY_SUFFIX = '.tmp';
/** Errors a disk recovers from once space is freed. */
const SPACE_ERRORS = new Set(['ENOSPC', 'EDQUOT']);
/** What `ping()` writes to see whether a disk that refused a write takes writes again. */
const PROBE_BYTES = 16 * 1024;
/** Rows per snapshot frame: keeps every frame small and the event loop free between frames. */
const SNAPSHOT_CHUNK = 1000;

/**
 * The controller's default store: MemoryStore's state, journaled to a data dir so it survives a
 * restart or a SIGKILL at any instant.
 *
 * - Every mutation's result (the rows it wrote, see MemoryStore) is appended to `store.journal`
 *   and fsynced before its promise resolves and before any reader or watcher sees it. Mutations
 *   that arrive while an fsync runs share the next one (group commit).
 * - A crash can only cut the last, unacknowledged batch short: that torn tail is cut off at the
 *   next start with one log line. Damage anywhere else is refused with an error naming the file.
 * - The journal is rewritten as `store.snapshot` (temp file, fsync, rename, directory fsync) once
 *   it grows past `compactAfterBytes`, so it never grows without bound and start-up replays little.
 *   The snapshot is written while writes go on; only replacing the journal with what was
 *   journaled meanwhile holds them up.
 * - One process per data dir (`controller.lock`); the store is single-replica by design.
 * - A write that cannot be persisted (disk full, read-only, I/O error) is refused with
 *   STORE_UNAVAILABLE naming the path and errno, nothing of it becomes visible, reads go on, and
 *   `ping()` reports unavailable until the disk takes writes again. After an fsync that failed for
 *   another reason than space (EIO), the page cache can no longer be trusted: every write is
 *   refused until a restart re-reads the journal.
 * - What survives a restart is decided per table in MemoryStore (locks do not).
 */
export class JournalStore extends MemoryStore {
  override readonly kind = 'journal' as const;
  readonly dataDir: string;
  private readonly journalPath: string;
  private readonly snapshotPath: string;
  private readonly compactAfterBytes: number;
  private readonly log: Logger;
  private readonly sink: RecordSink;
  private lock: DataDirLock | undefined;
  private lockRefresh: NodeJS.Timeout | undefined;
  private journal: FileHandle | undefined;
  private loading: Promise<void> | undefined;
  /** Size of the journal file: where the next batch goes. */
  private journalBytes = 0;
  private journalHeaderBytes = 0;
  private snapshotBytes = 0;
  /** Journal size at which the next compaction is due. */
  private compactAt = 0;
  /** Sequence number of the last journaled record. */
  private seq = 0;
  /** The last write could not be persisted; cleared by the next one that is. */
  private failure: StoreError | undefined;
  /** Writes are refused until a restart. */
  private broken: StoreError | undefined;
  private loads = 0;
  private compactionRequested = false;
  private compactionError: unknown;
  /** The compaction under way: its snapshot is written while writes go on (see startCompaction). */
  private compaction: Compaction | undefined;

  constructor(options: JournalStoreOptions) {
    super(options);
    this.dataDir = options.dataDir;
    this.journalPath = join(options.dataDir, JOURNAL_FILE);
    this.snapshotPath = join(options.dataDir, SNAPSHOT_FILE);
    this.compactAfterBytes = options.compactAfterBytes ?? 16 * 1024 * 1024;
    this.log = options.log ?? createSilentLogger();
    this.sink = { persist: (records) => this.persist(records), afterApply: () => this.afterApply() };
  }

  /** Moves on every load from disk (a store closed and opened again may hold something else). */
  override get connectionGeneration(): number {
    return this.loads;
  }

  /** Open, and not refusing writes for good (a failed fsync); a full disk shows in `ping()`. */
  override get connectionUp(): boolean {
    return super.connectionUp && this.journal !== undefined && this.broken === undefined;
  }

  /**
   * Takes the data dir's lock and reads the snapshot and journal into memory. `open()` does it too;
   * the controller's CLI calls it first, so a data dir that cannot be used stops the start with one
   * clear error instead of a retry loop.
   */
  async load(): Promise<void> {
    if (this.journal) return;
    this.loading ??= this.loadFromDisk().finally(() => (this.loading = undefined));
    await this.loading;
  }

  override async open(): Promise<{ epoch: string; created: boolean }> {
    await this.load();
    return super.open();
  }

  override async close(): Promise<void> {
    await super.close();
    await this.loading?.catch(() => undefined);
    await this.state.settled();
    // Its temp file must be gone before the lock is: the next owner writes the same name.
    await this.compaction?.written;
    this.compaction = undefined;
    this.state.setSink(undefined);
    const journal = this.journal;
    this.journal = undefined;
    await journal?.close().catch(() => undefined);
    clearInterval(this.lockRefresh);
    await this.lock?.release();
    this.lock = undefined;
  }

  override async ping(): Promise<void> {
    await super.ping();
    if (this.broken) throw this.broken;
    if (!this.journal) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store in ${this.dataDir} is not open`);
    if (this.failure) {
      // Only a write can tell whether the disk takes writes again; one with some room to spare,
      // so a disk with a few bytes left does not flap between available and not.
      if (!(await this.probeDisk())) throw this.failure;
      this.log.info({ dataDir: this.dataDir }, 'embedded store data dir takes writes again');
      this.failure = undefined;
    }
  }

  /** Rewrites the journal as a snapshot now (at start, tests, benchmarks; it also happens on its own). */
  async compact(): Promise<void> {
    await this.finishCompaction();
    this.compactionRequested = true;
    this.compactionError = undefined;
    // Compactions start and end in the flush loop, between batches: a write makes it run.
    await this.mutate(() => undefined, { force: true });
    await this.state.settled();
    await this.finishCompaction();
    if (this.compactionError) throw this.compactionError;
  }

  protected override async mutate<T>(fn: (tx: Transaction) => T, options: { force?: boolean } = {}): Promise<T> {
    // Before load() there is nowhere to journal to: a write then would be silently volatile.
    if (!this.journal) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store in ${this.dataDir} is not open`);
    return super.mutate(fn, options);
  }

  private async loadFromDisk(): Promise<void> {
    const started = performance.now();
    try {
      await makeDirectory(this.dataDir);
    } catch (error) {
      throw diskError('create the data dir', this.dataDir, error);
    }
    const lock = await DataDirLock.acquire(this.dataDir);
    try {
      await this.removeTemporaries();
      this.state.clear();
      const snapshotSeq = await this.readSnapshot();
      const replayed = await this.readJournal(snapshotSeq);
      this.journal = await open(this.journalPath, 'r+').catch((error: unknown) => {
        throw diskError('open the journal', this.journalPath, error);
      });
      this.lock = lock;
      this.loads++;
      this.lockRefresh = setInterval(() => lock.refresh(), LOCK_REFRESH_MS).unref();
      this.failure = undefined;
      this.broken = undefined;
      this.state.setSink(this.sink);
      this.scheduleCompaction();
      this.log.info(
        { dataDir: this.dataDir, snapshotSeq, replayed, seq: this.seq, journalBytes: this.journalBytes, snapshotBytes: this.snapshotBytes, ms: Math.round(performance.now() - started) },
        'embedded store loaded',
      );
    } catch (error) {
      clearInterval(this.lockRefresh);
      const journal = this.journal;
      this.journal = undefined;
      await journal?.close().catch(() => undefined);
      await lock.release();
      this.state.clear();
      throw error;
    }
    if (this.journalBytes >= this.compactAt) await this.compact().catch(() => undefined);
  }

  /** Loads the snapshot, if any, into the tables; returns the sequence number it covers. */
  private async readSnapshot(): Promise<number> {
    const file = this.snapshotPath;
    let buffer: Buffer;
    try {
      buffer = await readFile(file);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') {
        this.snapshotBytes = 0;
        return 0;
      }
      throw diskError('read the snapshot', file, error);
    }
    // The snapshot is only ever renamed into place whole: any damage is corruption, not a crash.
    const { frames, damage } = readFrames(buffer);
    if (damage) throw damagedFile(file, `${damage.problem} at byte ${damage.offset}; move it aside only if you accept losing the state it holds`);
    const header = checkHeader(frames[0], file, SNAPSHOT_FORMAT);
    const seq = header.seq;
    if (!Number.isSafeInteger(seq)) throw damagedFile(file, 'its header has no sequence number');
    let ended = false;
    for (const frame of frames.slice(1)) {
      if (ended) throw damagedFile(file, `frames follow its end marker at byte ${frame.offset}`);
      let body: { table?: string; rows?: Array<[string, unknown]>; log?: Change[]; end?: boolean };
      try {
        body = JSON.parse(frame.payload.toString('utf8')) as typeof body;
      } catch {
        throw damagedFile(file, `the frame at byte ${frame.offset} is not JSON`);
      }
      if (body.end === true) ended = true;
      else if (Array.isArray(body.log)) {
        for (const change of body.log as Array<Change & { current?: 1 }>) {
          if (change.current !== 1) continue;
          let row: unknown;
          try {
            row = this.state.tableFor(change.type).rows.get(change.key);
          } catch {
            row = undefined;
          }
          if (row === undefined) throw damagedFile(file, `its change log refers to ${change.type} "${change.key}", which it does not hold`);
          change.value = row as Change['value'];
          delete change.current;
        }
        this.state.changeLog.append(body.log);
      }
      else if (typeof body.table === 'string' && Array.isArray(body.rows)) {
        const table = this.state.tableNamed(body.table);
        if (!table) throw damagedFile(file, `it holds a table "${body.table}" this fedgate does not know; was it written by a newer version?`);
        for (const [key, value] of body.rows) table.apply(key, value, 0);
      } else throw damagedFile(file, `the frame at byte ${frame.offset} is not a snapshot section`);
    }
    if (!ended) throw damagedFile(file, 'it has no end marker');
    this.snapshotBytes = buffer.length;
    return seq as number;
  }

  /** Replays the journal records after `snapshotSeq`; cuts off a torn tail; creates the journal when missing. */
  private async readJournal(snapshotSeq: number): Promise<number> {
    const file = this.journalPath;
    let buffer: Buffer;
    try {
      buffer = await readFile(file);
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw diskError('read the journal', file, error);
      if (snapshotSeq > 0) this.log.warn({ file, snapshotSeq }, 'journal missing; starting from the snapshot alone');
      const created = await this.createJournal().catch((error: unknown) => {
        throw error instanceof RenamedUnsynced ? error.cause : error;
      });
      await created.close();
      this.seq = snapshotSeq;
      return 0;
    }
    const { frames, end, damage } = readFrames(buffer);
    // The header is renamed into place with the empty journal: damage there is not a torn write.
    if (frames.length === 0) throw damagedFile(file, damage ? `${damage.problem} at byte ${damage.offset} (its header)` : 'it is empty');
    checkHeader(frames[0], file, JOURNAL_FORMAT);
    this.journalHeaderBytes = (frames[0] as { end: number }).end;
    let lastSeq = snapshotSeq;
    let replayed = 0;
    for (const frame of frames.slice(1)) {
      const entry = decodeRecord(frame, file);
      if (entry.seq <= snapshotSeq) continue;
      if (entry.seq !== lastSeq + 1) {
        throw damagedFile(file, `record ${entry.seq} at byte ${frame.offset} follows record ${lastSeq}: records are missing${snapshotSeq > 0 && lastSeq === snapshotSeq ? ` after the snapshot ${this.snapshotPath}` : ''}`);
      }
      for (const write of entry.record.writes) {
        if (!this.state.tableNamed(write[0])) throw damagedFile(file, `the record at byte ${frame.offset} writes a table "${write[0]}" this fedgate does not know; was it written by a newer version?`);
      }
      try {
        this.state.replay(entry.record);
      } catch (error) {
        throw damagedFile(file, `the record at byte ${frame.offset} cannot be applied: ${errorMessage(error)}`);
      }
      lastSeq = entry.seq;
      replayed++;
    }
    const lastFrameSeq = frames.length > 1 ? Math.max(lastSeq, decodeRecord(frames[frames.length - 1] as (typeof frames)[number], file).seq) : lastSeq;
    if (damage) {
      if (laterBatchAfter(buffer, damage.offset, lastFrameSeq)) {
        throw damagedFile(file, `${damage.problem} at byte ${damage.offset}, and records written after it were acknowledged; restore the data dir from a backup`);
      }
      try {
        const handle = await open(file, 'r+');
        try {
          await handle.truncate(end);
          await handle.datasync();
        } finally {
          await handle.close();
        }
      } catch (error) {
        throw diskError('cut the torn tail off the journal', file, error);
      }
      this.log.warn(
        { file, offset: end, bytes: buffer.length - end, problem: damage.problem, lastSeq },
        'journal ended in a torn record (a write cut short by a crash); cut it off — every acknowledged write before it is intact',
      );
    }
    this.seq = lastSeq;
    this.journalBytes = end;
    return replayed;
  }

  /** A journal holding only its header, renamed into place; returns it open for appending. */
  private async createJournal(): Promise<FileHandle> {
    const header = encodeFrame(headerPayload(JOURNAL_FORMAT));
    const handle = await this.writeAtomically(this.journalPath, 'create the journal', async (file) => {
      await file.write(header, 0, header.length, 0);
    });
    this.journalHeaderBytes = header.length;
    this.journalBytes = header.length;
    return handle;
  }

  private async persist(records: readonly MutationRecord[]): Promise<void> {
    if (this.broken) throw this.broken;
    const journal = this.journal;
    if (!journal) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store in ${this.dataDir} is not open`);
    const batch = this.seq + 1;
    let seq = this.seq;
    const frames: Buffer[] = [];
    for (const record of records) {
      const payload = encodeRecord(record, seq + 1, batch, (table) => this.state.tableNamed(table)?.lifetime === 'durable');
      if (payload === undefined) continue;
      seq++;
      frames.push(encodeFrame(payload));
    }
    if (frames.length === 0) return;
    const bytes = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
    let action = 'write the journal';
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await journal.write(bytes, written, bytes.length - written, this.journalBytes + written);
        written += bytesWritten;
      }
      action = 'sync the journal';
      await journal.datasync();
    } catch (error) {
      const failure = diskError(action, this.journalPath, error);
      // A failed fsync other than for space (EIO) may have dropped pages of earlier writes from the
      // cache unwritten: what is on disk is unknown until the journal is read again.
      const lostPages = action === 'sync the journal' && !SPACE_ERRORS.has(errnoOf(error) ?? '');
      try {
        if (lostPages) throw error;
        // Leave no partial batch behind for the next one to land after.
        await journal.truncate(this.journalBytes);
        if (action === 'sync the journal') await journal.datasync();
      } catch (repairError) {
        const cause = diskError(lostPages ? action : 'repair the journal after a failed write', this.journalPath, repairError);
        this.broken = new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${cause.message}; writes are refused until the controller restarts (once the disk is fixed)`, { cause: repairError });
        this.log.error({ err: this.broken.message }, 'embedded store refuses writes until restarted');
        throw this.broken;
      }
      if (!this.failure) this.log.error({ err: failure.message }, 'embedded store cannot persist writes; refusing them (reads go on) until the disk takes writes again');
      this.failure = failure;
      throw failure;
    }
    this.journalBytes += bytes.length;
    this.seq = seq;
    this.compaction?.tail.push(bytes);
    if (this.failure) {
      this.log.info({ file: this.journalPath }, 'embedded store persists writes again');
      this.failure = undefined;
    }
  }

  private async afterApply(): Promise<void> {
    if (this.broken) return;
    if (this.compaction) {
      if (this.compaction.done) await this.swapJournal(this.compaction);
      return;
    }
    if (this.journalBytes < this.compactAt && !this.compactionRequested) return;
    this.compactionRequested = false;
    this.startCompaction();
  }

  private scheduleCompaction(): void {
    this.compactAt = this.journalHeaderBytes + Math.max(this.compactAfterBytes, this.snapshotBytes);
  }

  /** Waits for the compaction under way, and for its journal swap (made to run by a write). */
  private async finishCompaction(): Promise<void> {
    const compaction = this.compaction;
    if (!compaction) return;
    await compaction.written;
    if (this.compaction === compaction && compaction.done) {
      await this.mutate(() => undefined, { force: true });
      await this.state.settled();
    }
  }

  /**
   * Compaction, step 1 (in the flush loop, synchronous): takes the committed rows and change log
   * as of record `seq` (rows are never changed in place, so the lists stay true), and writes them
   * as the snapshot in the background while writes go on into the journal; the bytes journaled
   * meanwhile are kept aside (`tail`).
   */
  private startCompaction(): void {
    const started = performance.now();
    const seq = this.seq;
    const sections = this.state
      .allTables()
      .filter((table) => table.lifetime === 'durable')
      .map((table) => ({ table: table.name, rows: [...table.rows] }));
    // A change whose value is still its row's is written without it (`"current":1`): the row is
    // in the snapshot already, and loading shares one object between the two.
    const log = this.state.changeLog
      .all()
      .map((change) =>
        change.op === 'put' && this.state.tableFor(change.type).rows.get(change.key) === change.value ? { revision: change.revision, type: change.type, key: change.key, op: 'put', current: 1 } : change,
      );
    const compaction: Compaction = { seq, tail: [], snapshotBytes: 0, done: false, written: Promise.resolve() };
    compaction.written = this.writeSnapshot(seq, sections, log).then(
      (bytes) => {
        compaction.snapshotBytes = bytes;
        compaction.done = true;
        this.log.info({ seq, snapshotBytes: bytes, ms: Math.round(performance.now() - started) }, 'journal compacted into a snapshot');
      },
      (error: unknown) => {
        if (this.compaction === compaction) this.compaction = undefined;
        this.compactionFailed(error);
      },
    );
    this.compaction = compaction;
  }

  private async writeSnapshot(seq: number, sections: Array<{ table: string; rows: Array<[string, unknown]> }>, log: unknown[]): Promise<number> {
    let bytes = 0;
    const snapshot = await this.writeAtomically(this.snapshotPath, 'write the snapshot', async (handle) => {
      const write = async (payload: string): Promise<void> => {
        const frame = encodeFrame(payload);
        await handle.write(frame, 0, frame.length, bytes);
        bytes += frame.length;
      };
      await write(headerPayload(SNAPSHOT_FORMAT, { seq }));
      for (const section of sections) {
        for (let i = 0; i < section.rows.length || i === 0; i += SNAPSHOT_CHUNK) {
          await write(JSON.stringify({ table: section.table, rows: section.rows.slice(i, i + SNAPSHOT_CHUNK) }));
        }
      }
      for (let i = 0; i < log.length; i += SNAPSHOT_CHUNK * 10) await write(JSON.stringify({ log: log.slice(i, i + SNAPSHOT_CHUNK * 10) }));
      await write(JSON.stringify({ end: true }));
    });
    await snapshot.close();
    return bytes;
  }

  /**
   * Compaction, step 2 (in the flush loop, between batches): the snapshot covering record `seq` is
   * on disk; the journal is replaced by one holding only what was journaled since. A crash before
   * the rename leaves the old journal, whose records up to `seq` are skipped at the next start.
   */
  private async swapJournal(compaction: Compaction): Promise<void> {
    this.compaction = undefined;
    const header = encodeFrame(headerPayload(JOURNAL_FORMAT));
    const tail = Buffer.concat(compaction.tail);
    let next: FileHandle;
    try {
      next = await this.writeAtomically(this.journalPath, 'rewrite the journal', async (handle) => {
        await handle.write(header, 0, header.length, 0);
        if (tail.length > 0) await handle.write(tail, 0, tail.length, header.length);
      });
    } catch (error) {
      this.compactionFailed(error);
      return;
    }
    const previous = this.journal;
    this.journal = next;
    this.journalHeaderBytes = header.length;
    this.journalBytes = header.length + tail.length;
    this.snapshotBytes = compaction.snapshotBytes;
    this.scheduleCompaction();
    await previous?.close().catch(() => undefined);
  }

  private compactionFailed(error: unknown): void {
    this.compactionError = error;
    if (error instanceof RenamedUnsynced) {
      // A file is in place but its directory entry may not be on disk: records written from now
      // on could vanish with a crash. Nothing more is accepted until a restart.
      this.broken = error.cause;
      this.compactionError = error.cause;
      this.log.error({ err: error.cause.message }, 'embedded store refuses writes until restarted');
      return;
    }
    // The old journal goes on (a snapshot that made it to disk covers a prefix of it).
    this.compactAt = this.journalBytes + this.compactAfterBytes;
    this.log.warn({ err: errorMessage(error) }, 'journal compaction failed; the journal goes on and compaction is retried later');
  }

  /**
   * Temp file, fsync, rename, directory fsync; returns the file open (read/write) under its final
   * name. The temp file is removed when anything before the rename fails.
   */
  private async writeAtomically(path: string, action: string, fill: (handle: FileHandle) => Promise<void>): Promise<FileHandle> {
    const temporary = `${path}${TEMPORARY_SUFFIX}`;
    let handle: FileHandle | undefined;
    try {
      handle = await open(temporary, 'w+', 0o600);
      await fill(handle);
      await handle.sync();
      await rename(temporary, path);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw diskError(action, path, error);
    }
    try {
      await this.syncDataDir();
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw new RenamedUnsynced(diskError(`sync the data dir after renaming ${path} (restart the controller once the disk is fixed)`, this.dataDir, error));
    }
    return handle;
  }

  private async syncDataDir(): Promise<void> {
    await syncDirectory(this.dataDir);
  }

  /** Writes and removes PROBE_BYTES beside the journal; true when the disk took them. */
  private async probeDisk(): Promise<boolean> {
    const path = join(this.dataDir, `probe${TEMPORARY_SUFFIX}`);
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, 'w', 0o600);
      await handle.write(Buffer.alloc(PROBE_BYTES), 0, PROBE_BYTES, 0);
      await handle.sync();
      return true;
    } catch {
      return false;
    } finally {
      await handle?.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
    }
  }

  /** Left by a crash in the middle of a compaction or a probe; never read. */
  private async removeTemporaries(): Promise<void> {
    for (const path of [this.snapshotPath, this.journalPath, join(this.dataDir, 'probe')]) {
      try {
        await unlink(`${path}${TEMPORARY_SUFFIX}`);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw diskError('remove the temporary file', `${path}${TEMPORARY_SUFFIX}`, error);
      }
    }
  }
}

/**
 * mkdir -p, mode 0700, reporting the real errno: a recursive mkdir reports ENOENT where the file
 * system is read-only.
 */
async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
    // The new directory's own entry must be on disk too, before anything inside it counts.
    await syncDirectory(dirname(dir));
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error;
    await makeDirectory(dirname(dir));
    await mkdir(dir, { mode: 0o700 }).catch((again: unknown) => {
      if (errnoOf(again) !== 'EEXIST') throw again;
    });
    await syncDirectory(dirname(dir));
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A file was renamed into place but the directory could not be synced after it. */
class RenamedUnsynced extends Error {
  constructor(override readonly cause: StoreError) {
    super(cause.message);
  }
}

interface Compaction {
  /** The last record the snapshot covers. */
  seq: number;
  /** The batches journaled since `seq`, in order: the new journal's content. */
  tail: Buffer[];
  snapshotBytes: number;
  /** The snapshot is on disk; the journal swap is due. */
  done: boolean;
  /** Settles when the snapshot is written or could not be (then `compactionError` says why). */
  written: Promise<void>;
}
