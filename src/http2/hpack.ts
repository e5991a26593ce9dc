/**
 * HPACK (RFC 7541) for the HTTP/2 upstream client: a complete decoder, and an encoder that trades
 * compression ratio for speed (no Huffman, no search beyond two hash lookups per field).
 */
import { huffmanDecode } from './hpack-huffman.js';

/** A malformed header block; the connection must fail with COMPRESSION_ERROR (RFC 7540 4.3). */
export class HpackError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'HpackError';
  }
}

/** RFC 7541 Appendix A, 1-based (slot 0 unused). */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = 61;
const FIRST_DYNAMIC_INDEX = STATIC_COUNT + 1;
/** RFC 7541 4.1: every entry costs 32 octets on top of its name and value. */
const ENTRY_OVERHEAD = 32;
const DEFAULT_TABLE_SIZE = 4096;
/** Beyond this, our encoder keeps its table at this size whatever the peer allows, bounding memory per connection (nghttp2 does the same). */
const ENCODER_TABLE_CAP = 4096;
/** Larger than any sane header size; keeps arithmetic in int32 and stops runaway continuations. */
const MAX_INTEGER = 0x7fffffff;
const MAX_CONTINUATION_BYTES = 5;

/**
 * Keyed two levels deep (name, then value) rather than by a joined string, so that a lookup on
 * the hot path allocates nothing.
 */
interface NameIndex {
  /** Lowest static index / newest insertion number with this name. */
  first: number;
  values: Map<string, number>;
}

const STATIC_LOOKUP: ReadonlyMap<string, NameIndex> = (() => {
  const lookup = new Map<string, NameIndex>();
  for (let i = 1; i <= STATIC_COUNT; i++) {
    const [name, value] = STATIC_TABLE[i]!;
    let entry = lookup.get(name);
    if (entry === undefined) lookup.set(name, (entry = { first: i, values: new Map() }));
    if (!entry.values.has(value)) entry.values.set(value, i);
  }
  return lookup;
})();

const SENSITIVE = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/**
 * Dynamic table entries addressed by insertion number: entry n lives in slot n & mask and the live
 * entries are [inserted - count, inserted). HPACK index i (>= 62) is insertion inserted - 1 - (i - 62),
 * so inserting never renumbers what is stored.
 */
class DynamicTable {
  names: string[] = new Array<string>(16).fill('');
  values: string[] = new Array<string>(16).fill('');
  mask = 15;
  inserted = 0;
  count = 0;
  size = 0;

  constructor(public maxSize: number) {}

  nameAt(insertion: number): string {
    return this.names[insertion & this.mask]!;
  }

  valueAt(insertion: number): string {
    return this.values[insertion & this.mask]!;
  }

  /** The insertion number behind HPACK index `index`, or -1 when the index is not in the table. */
  insertionOf(index: number): number {
    const age = index - FIRST_DYNAMIC_INDEX;
    return age < this.count ? this.inserted - 1 - age : -1;
  }

  indexOf(insertion: number): number {
    return FIRST_DYNAMIC_INDEX + (this.inserted - 1 - insertion);
  }

  evictOldest(): void {
    const insertion = this.inserted - this.count;
    const slot = insertion & this.mask;
    this.size -= this.names[slot]!.length + this.values[slot]!.length + ENTRY_OVERHEAD;
    this.names[slot] = '';
    this.values[slot] = '';
    this.count--;
  }

  /** Caller has made room (size + entry size <= maxSize). Returns the insertion number. */
  push(name: string, value: string, entrySize: number): number {
    if (this.count > this.mask) this.grow();
    const insertion = this.inserted++;
    this.names[insertion & this.mask] = name;
    this.values[insertion & this.mask] = value;
    this.count++;
    this.size += entrySize;
    return insertion;
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    const mask = capacity - 1;
    for (let n = this.inserted - this.count; n < this.inserted; n++) {
      names[n & mask] = this.names[n & this.mask]!;
      values[n & mask] = this.values[n & this.mask]!;
    }
    this.names = names;
    this.values = values;
    this.mask = mask;
  }
}

export class HpackDecoder {
  private readonly table: DynamicTable;
  private readonly maxTableSize: number;
  private readonly maxHeaderListSize: number;
  private pos = 0;

  /**
   * maxTableSize: our SETTINGS_HEADER_TABLE_SIZE (default 4096), also the table's size until the
   * peer updates it — our SETTINGS precede anything the peer encodes for us. maxHeaderListSize: sum
   * of name+value+32 per field allowed (default 64 KiB).
   */
  constructor(maxTableSize = DEFAULT_TABLE_SIZE, maxHeaderListSize = 64 * 1024) {
    this.maxTableSize = maxTableSize;
    this.maxHeaderListSize = maxHeaderListSize;
    this.table = new DynamicTable(maxTableSize);
  }

  /** Octets held in the dynamic table (RFC 7541 §4.1 size): never above our SETTINGS_HEADER_TABLE_SIZE. */
  get tableSize(): number {
    return this.table.size;
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION fragments already joined), calling
   * emit per field in order. Throws HpackError on malformed input; the dynamic table is then in an
   * undefined state, which is fine as the connection must die. A list above maxHeaderListSize is
   * not malformed: decoding goes on so the table stays in step with the peer, the fields past the
   * limit are not emitted, and the result is false (the caller refuses that one stream, 431-style).
   */
  decode(block: Buffer, emit: (name: string, value: string) => void): boolean {
    const end = block.length;
    const table = this.table;
    let listSize = 0;
    let fieldSeen = false;
    this.pos = 0;
    while (this.pos < end) {
      const first = block[this.pos]!;
      let name: string;
      let value: string;
      if (first >= 0x80) {
        // 6.1 indexed field
        const index = this.readInteger(block, 7);
        if (index === 0) throw new HpackError('HPACK indexed field with index 0');
        if (index <= STATIC_COUNT) {
          const field = STATIC_TABLE[index]!;
          name = field[0];
          value = field[1];
        } else {
          const insertion = table.insertionOf(index);
          if (insertion < 0) throw new HpackError(`HPACK index ${index} is beyond the table`);
          name = table.nameAt(insertion);
          value = table.valueAt(insertion);
        }
      } else if (first >= 0x40) {
        // 6.2.1 literal with incremental indexing
        name = this.readName(block, 6);
        value = this.readString(block);
        this.insert(name, value);
      } else if (first >= 0x20) {
        // 6.3 dynamic table size update
        if (fieldSeen) throw new HpackError('HPACK dynamic table size update after the first field of a block');
        const size = this.readInteger(block, 5);
        if (size > this.maxTableSize) {
          throw new HpackError(`HPACK dynamic table size update to ${size} exceeds our limit ${this.maxTableSize}`);
        }
        table.maxSize = size;
        while (table.size > size) table.evictOldest();
        continue;
      } else {
        // 6.2.2 without indexing / 6.2.3 never indexed: identical for a decoder that does not re-encode
        name = this.readName(block, 4);
        value = this.readString(block);
      }
      fieldSeen = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize <= this.maxHeaderListSize) emit(name, value);
    }
    return listSize <= this.maxHeaderListSize;
  }

  private insert(name: string, value: string): void {
    const table = this.table;
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    // RFC 7541 4.4: an entry larger than the table empties it and is not added.
    while (table.count > 0 && table.size + entrySize > table.maxSize) table.evictOldest();
    if (entrySize <= table.maxSize) table.push(name, value, entrySize);
  }

  private readName(block: Buffer, prefixBits: number): string {
    const index = this.readInteger(block, prefixBits);
    if (index === 0) return this.readString(block);
    if (index <= STATIC_COUNT) return STATIC_TABLE[index]![0];
    const insertion = this.table.insertionOf(index);
    if (insertion < 0) throw new HpackError(`HPACK name index ${index} is beyond the table`);
    return this.table.nameAt(insertion);
  }

  private readString(block: Buffer): string {
    if (this.pos >= block.length) throw new HpackError('HPACK block truncated before a string literal');
    const huffman = block[this.pos]! >= 0x80;
    const length = this.readInteger(block, 7);
    const start = this.pos;
    const end = start + length;
    if (end > block.length) throw new HpackError('HPACK string literal truncated');
    this.pos = end;
    if (!huffman) return block.toString('latin1', start, end);
    const decoded = huffmanDecode(block, start, end);
    if (decoded === null) throw new HpackError('HPACK invalid Huffman string (EOS or bad padding)');
    return decoded;
  }

  /** 5.1 integer with an N-bit prefix, starting at this.pos (the prefix byte's flag bits are ignored). */
  private readInteger(block: Buffer, prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let value = block[this.pos++]! & mask;
    if (value < mask) return value;
    for (let shift = 0; shift < 7 * MAX_CONTINUATION_BYTES; shift += 7) {
      if (this.pos >= block.length) throw new HpackError('HPACK integer truncated');
      const byte = block[this.pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError('HPACK integer overflow');
      if (byte < 0x80) return value;
    }
    throw new HpackError('HPACK integer has too many continuation bytes');
  }
}

export class HpackEncoder {
  private readonly table = new DynamicTable(DEFAULT_TABLE_SIZE);
  /** Per name: newest insertion number with that name, and per value the insertion number. */
  private readonly lookup = new Map<string, NameIndex>();
  /** Smallest table size since the last block, when a size update is owed (RFC 7541 4.2). */
  private pendingMinSize = -1;
  private scratch = Buffer.allocUnsafe(4096);

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE (default 4096). If it changes, the next block starts with
   * a dynamic table size update. We never use more than 4096 octets whatever the peer allows.
   */
  setMaxTableSize(size: number): void {
    const target = Math.min(size, ENCODER_TABLE_CAP);
    if (target === this.table.maxSize && this.pendingMinSize < 0) return;
    this.pendingMinSize = this.pendingMinSize < 0 ? target : Math.min(this.pendingMinSize, target);
    this.table.maxSize = target;
    while (this.table.size > target) this.evictOldest();
  }

  /** Encodes one header block from a flat array [name0, value0, name1, value1, ...]; names already lowercase. */
  encode(fields: readonly string[]): Buffer {
    let out = this.scratch;
    let p = 0;
    const table = this.table;
    if (this.pendingMinSize >= 0) {
      // 4.2: signal the smallest size reached since the last block, then the final one.
      if (this.pendingMinSize < table.maxSize) p = writeInteger(out, p, 0x20, 5, this.pendingMinSize);
      p = writeInteger(out, p, 0x20, 5, table.maxSize);
      this.pendingMinSize = -1;
    }
    const indexLimit = table.maxSize / 4;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!;
      const value = fields[i + 1]!;
      // Worst case: prefix byte + 5 integer bytes, twice for the strings, once for the index.
      const need = p + name.length + value.length + 18;
      if (need > out.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, out.length * 2));
        out.copy(grown, 0, 0, p);
        this.scratch = out = grown;
      }

      // Static first: pseudo-headers and common fields hit it, and an exact static match is never inserted into the dynamic table.
      const fixed = STATIC_LOOKUP.get(name);
      let nameIndex = 0;
      if (fixed !== undefined) {
        const index = fixed.values.get(value);
        if (index !== undefined) {
          p = writeInteger(out, p, 0x80, 7, index);
          continue;
        }
        nameIndex = fixed.first;
      }
      const dynamic = this.lookup.get(name);
      if (dynamic !== undefined) {
        const insertion = dynamic.values.get(value);
        if (insertion !== undefined) {
          p = writeInteger(out, p, 0x80, 7, table.indexOf(insertion));
          continue;
        }
        if (nameIndex === 0) nameIndex = table.indexOf(dynamic.first);
      }

      const entrySize = name.length + value.length + ENTRY_OVERHEAD;
      if (SENSITIVE.has(name)) {
        p = writeInteger(out, p, 0x10, 4, nameIndex);
      } else if (entrySize <= indexLimit) {
        p = writeInteger(out, p, 0x40, 6, nameIndex);
        // The name index above was computed before this insertion, as the decoder will resolve it.
        this.insert(name, value, entrySize);
      } else {
        p = writeInteger(out, p, 0x00, 4, nameIndex);
      }
      if (nameIndex === 0) p = writeString(out, p, name);
      p = writeString(out, p, value);
    }
    const block = Buffer.allocUnsafe(p);
    out.copy(block, 0, 0, p);
    return block;
  }

  private insert(name: string, value: string, entrySize: number): void {
    const table = this.table;
    while (table.size + entrySize > table.maxSize) this.evictOldest();
    const insertion = table.push(name, value, entrySize);
    let entry = this.lookup.get(name);
    if (entry === undefined) this.lookup.set(name, (entry = { first: insertion, values: new Map() }));
    else entry.first = insertion;
    entry.values.set(value, insertion);
  }

  /** Evicts the oldest entry and drops the lookups that still point at it. */
  private evictOldest(): void {
    const table = this.table;
    const insertion = table.inserted - table.count;
    const name = table.nameAt(insertion);
    const value = table.valueAt(insertion);
    table.evictOldest();
    const entry = this.lookup.get(name);
    if (entry === undefined) return;
    // Eviction is oldest first, so once the newest entry with this name goes, none with it is left.
    if (entry.first === insertion) this.lookup.delete(name);
    else if (entry.values.get(value) === insertion) entry.values.delete(value);
  }
}

function writeInteger(out: Buffer, p: number, flags: number, prefixBits: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out[p++] = flags | value;
    return p;
  }
  out[p++] = flags | mask;
  value -= mask;
  while (value >= 0x80) {
    out[p++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[p++] = value;
  return p;
}

/** Raw (H = 0) latin1 literal; short strings are copied inline, which beats the native call. */
function writeString(out: Buffer, p: number, s: string): number {
  const length = s.length;
  p = writeInteger(out, p, 0x00, 7, length);
  if (length < 32) {
    for (let i = 0; i < length; i++) out[p + i] = s.charCodeAt(i);
    return p + length;
  }
  return p + out.write(s, p, length, 'latin1');
}
