import * as zlib from 'node:zlib';
import { ErrorCodes, StoreError } from '../../core/errors.js';
import type { Change } from '../../model/catalog.js';
import type { MutationRecord, TableWrite } from '../store-state.js';

/**
 * The embedded store's files: a journal of mutation records and a snapshot of everything, both a
 * sequence of frames `[u32 length][u32 crc32 of the payload][payload: JSON, UTF-8]`. The first
 * frame of each file names its format and version. Journal records carry their sequence number
 * `s` and the first sequence number of the batch (one write + fsync) they were written in, `b`.
 */
export const FORMAT_VERSION = 1;
export const JOURNAL_FORMAT = 'fedgate-store-journal';
export const SNAPSHOT_FORMAT = 'fedgate-store-snapshot';

export const FRAME_HEADER_BYTES = 8;
/** Far above any real record (a cluster's 10,000 exports are a few MB), far below V8's string limit. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

// zlib.crc32 arrived in Node.js 20.15; the table version keeps older 20.x working.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
let crcTable: Uint32Array | undefined;

export function crc32(data: Uint8Array): number {
  if (nativeCrc32) return nativeCrc32(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function encodeFrame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.writeUInt32BE(crc32(body), 4);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export interface Frame {
  offset: number;
  end: number;
  payload: Buffer;
}

/** The frame at `offset`, or why there is none: the file ends inside it, or its checksum fails. */
export function frameAt(buffer: Buffer, offset: number): Frame | { problem: string } {
  if (buffer.length - offset < FRAME_HEADER_BYTES) return { problem: `${buffer.length - offset} bytes, shorter than a frame header` };
  const length = buffer.readUInt32BE(offset);
  if (length === 0 || length > MAX_FRAME_BYTES) return { problem: `impossible frame length ${length}` };
  const end = offset + FRAME_HEADER_BYTES + length;
  if (end > buffer.length) return { problem: `frame of ${length} bytes runs past the end of the file` };
  const payload = buffer.subarray(offset + FRAME_HEADER_BYTES, end);
  if (crc32(payload) !== buffer.readUInt32BE(offset + 4)) return { problem: 'checksum mismatch' };
  return { offset, end, payload };
}

/** Every frame up to the first that is not whole; `damage` says where and why reading stopped. */
export function readFrames(buffer: Buffer): { frames: Frame[]; end: number; damage?: { offset: number; problem: string } } {
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    const frame = frameAt(buffer, offset);
    if ('problem' in frame) return { frames, end: offset, damage: { offset, problem: frame.problem } };
    frames.push(frame);
    offset = frame.end;
  }
  return { frames, end: offset };
}

export function damagedFile(file: string, detail: string): StoreError {
  return new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store file ${file} is damaged: ${detail}`);
}

function parse(frame: Frame, file: string): unknown {
  try {
    return JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw damagedFile(file, `the frame at byte ${frame.offset} is not JSON`);
  }
}

export function headerPayload(format: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ format, version: FORMAT_VERSION, ...extra });
}

/** Checks the first frame; a file of another kind or of a newer format is refused, naming the file. */
export function checkHeader(frame: Frame | undefined, file: string, format: string): Record<string, unknown> {
  if (!frame) throw damagedFile(file, 'it has no header frame');
  const header = parse(frame, file) as Record<string, unknown> | null;
  if (header === null || typeof header !== 'object' || header.format !== format) {
    throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store file ${file} is not a ${format} file`);
  }
  if (header.version !== FORMAT_VERSION) {
    const newer = typeof header.version === 'number' && header.version > FORMAT_VERSION;
    throw new StoreError(
      ErrorCodes.STORE_UNAVAILABLE,
      newer
        ? `embedded store file ${file} has format version ${String(header.version)}, newer than this fedgate reads (${FORMAT_VERSION}); run the fedgate version that wrote it (or a newer one)`
        : `embedded store file ${file} has unknown format version ${JSON.stringify(header.version)} (this fedgate reads ${FORMAT_VERSION})`,
    );
  }
  return header;
}

export interface JournalEntry {
  seq: number;
  batch: number;
  record: MutationRecord;
}

/**
 * One journal record as JSON, or undefined when the mutation wrote nothing durable. Key order is
 * fixed (`{"s":` first): the torn-tail check finds records by it.
 */
export function encodeRecord(record: MutationRecord, seq: number, batch: number, durable: (table: string) => boolean): string | undefined {
  const writes = record.writes.filter((write) => durable(write[0]));
  if (writes.length === 0 && record.changes.length === 0 && !record.resetLog) return undefined;
  const out: { s: number; b: number; w?: TableWrite[]; c?: Change[]; r?: 1 } = { s: seq, b: batch };
  if (writes.length > 0) out.w = writes;
  if (record.changes.length > 0) out.c = record.changes;
  if (record.resetLog) out.r = 1;
  return JSON.stringify(out);
}

export function decodeRecord(frame: Frame, file: string): JournalEntry {
  const value = parse(frame, file) as { s?: unknown; b?: unknown; w?: unknown; c?: unknown; r?: unknown } | null;
  const bad = (what: string): StoreError => damagedFile(file, `the record at byte ${frame.offset} ${what}`);
  if (value === null || typeof value !== 'object') throw bad('is not an object');
  if (!Number.isSafeInteger(value.s) || !Number.isSafeInteger(value.b)) throw bad('has no sequence number');
  const writes = value.w ?? [];
  const changes = value.c ?? [];
  if (!Array.isArray(writes) || !writes.every((w) => Array.isArray(w) && (w.length === 2 || w.length === 3) && typeof w[0] === 'string' && typeof w[1] === 'string')) throw bad('has malformed writes');
  if (!Array.isArray(changes) || !changes.every((c) => c !== null && typeof c === 'object' && typeof c.key === 'string' && typeof c.type === 'string')) throw bad('has malformed changes');
  return {
    seq: value.s as number,
    batch: value.b as number,
    record: { writes: writes as TableWrite[], changes: changes as Change[], resetLog: value.r === 1, force: false },
  };
}

const RECORD_START = Buffer.from('{"s":');

/**
 * Whether a whole record of a batch later than `lastSeq + 1` lies after `from`. Batches are written
 * one at a time, each only after the previous one's fsync; so damage followed by a later batch
 * hit data that was already acknowledged (corruption), while damage with nothing later after it
 * is the unacknowledged last batch cut short by a crash (a torn tail).
 */
export function laterBatchAfter(buffer: Buffer, from: number, lastSeq: number): boolean {
  let at = buffer.indexOf(RECORD_START, from + FRAME_HEADER_BYTES);
  while (at !== -1) {
    const frame = frameAt(buffer, at - FRAME_HEADER_BYTES);
    if (!('problem' in frame)) {
      try {
        const value = JSON.parse(frame.payload.toString('utf8')) as { b?: unknown };
        if (typeof value.b === 'number' && value.b > lastSeq + 1) return true;
      } catch {
        // Not a record after all: keep looking.
      }
    }
    at = buffer.indexOf(RECORD_START, at + 1);
  }
  return false;
}
