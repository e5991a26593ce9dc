import { describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES, HUFFMAN_EOS, huffmanDecode } from './hpack-huffman.js';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';

type Field = [string, string];

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function decodeAll(decoder: HpackDecoder, block: Buffer): Field[] {
  const fields: Field[] = [];
  decoder.decode(block, (name, value) => fields.push([name, value]));
  return fields;
}

/**
 * The dynamic table as seen through the public interface: index 62, 63, ... until the decoder
 * rejects the index. A block of indexed fields only reads the table, so probing leaves it intact.
 */
function dynamicTable(decoder: HpackDecoder): Field[] {
  const entries: Field[] = [];
  for (let index = 62; ; index++) {
    try {
      entries.push(...decodeAll(decoder, encodeIndexed(index)));
    } catch (error) {
      expect(error).toBeInstanceOf(HpackError);
      return entries;
    }
  }
}

function encodeIndexed(index: number): Buffer {
  if (index < 127) return Buffer.from([0x80 | index]);
  const bytes = [0xff];
  let rest = index - 127;
  while (rest >= 128) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function flat(fields: readonly Field[]): string[] {
  return fields.flatMap(([name, value]) => [name, value]);
}

/** Test-only Huffman encoder, straight from the code table: bits as text, padded with ones. */
function huffmanEncode(bytes: Uint8Array): Buffer {
  let bits = '';
  for (const byte of bytes) bits += HUFFMAN_CODES[byte]!.toString(2).padStart(HUFFMAN_CODE_LENGTHS[byte]!, '0');
  bits += '1'.repeat((8 - (bits.length % 8)) % 8);
  const out = Buffer.alloc(bits.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(bits.slice(8 * i, 8 * i + 8), 2);
  return out;
}

function huffman(bytes: Uint8Array): string | null {
  return huffmanDecode(bytes, 0, bytes.length);
}

const C3_C4_REQUESTS: Field[][] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ],
];

const C3_C4_TABLES: Field[][] = [
  [[':authority', 'www.example.com']],
  [
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ],
  [
    ['custom-key', 'custom-value'],
    ['cache-control', 'no-cache'],
    [':authority', 'www.example.com'],
  ],
];

const C3_BLOCKS = [
  '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
  '8286 84be 5808 6e6f 2d63 6163 6865',
  '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
];

const C4_BLOCKS = [
  '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
  '8286 84be 5886 a8eb 1064 9cbf',
  '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
];

const C5_C6_RESPONSES: Field[][] = [
  [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
    ['location', 'https://www.example.com'],
    ['content-encoding', 'gzip'],
    ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
  ],
];

const C5_C6_TABLES: Field[][] = [
  [
    ['location', 'https://www.example.com'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['cache-control', 'private'],
    [':status', '302'],
  ],
  [
    [':status', '307'],
    ['location', 'https://www.example.com'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['cache-control', 'private'],
  ],
  [
    ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ['content-encoding', 'gzip'],
    ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
  ],
];

const C5_BLOCKS = [
  `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
   2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
   6c65 2e63 6f6d`,
  '4803 3330 37c1 c0bf',
  `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
   54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
   5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
   3d31`,
];

const C6_BLOCKS = [
  `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
   2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
  '4883 640e ffc1 c0bf',
  `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
   77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
   9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
];

describe('HPACK Huffman code', () => {
  it('derives the codes of RFC 7541 Appendix B from the code lengths', () => {
    const known: Array<[number, number, number]> = [
      [48, 0x0, 5], // '0'
      [49, 0x1, 5], // '1'
      [32, 0x14, 6], // ' '
      [97, 0x3, 5], // 'a'
      [0, 0x1ff8, 13],
      [1, 0x7fffd8, 23],
      [10, 0x3ffffffc, 30],
      [58, 0x5c, 7], // ':'
      [92, 0x7fff0, 19], // '\'
      [127, 0xffffffc, 28],
      [128, 0xfffe6, 20],
      [195, 0x7fff1, 19],
      [255, 0x3ffffee, 26],
      [HUFFMAN_EOS, 0x3fffffff, 30],
    ];
    for (const [symbol, code, length] of known) {
      expect([symbol, HUFFMAN_CODES[symbol], HUFFMAN_CODE_LENGTHS[symbol]]).toEqual([symbol, code, length]);
    }
    // Kraft equality: the code is complete, so every bit pattern decodes to something.
    let kraft = 0;
    for (const length of HUFFMAN_CODE_LENGTHS) kraft += 2 ** -length;
    expect(kraft).toBe(1);
  });

  it('decodes every byte value, alone and in random strings', () => {
    for (let byte = 0; byte < 256; byte++) {
      expect(huffman(huffmanEncode(Uint8Array.of(byte)))).toBe(String.fromCharCode(byte));
    }
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 8;
    };
    for (let round = 0; round < 500; round++) {
      const bytes = Uint8Array.from({ length: random() % 64 }, () => (round % 2 === 0 ? random() % 256 : 32 + (random() % 95)));
      expect(huffman(huffmanEncode(bytes))).toBe(Buffer.from(bytes).toString('latin1'));
    }
    expect(huffman(new Uint8Array(0))).toBe('');
  });

  it('rejects bad padding and EOS', () => {
    // 'a' is 00011: padding with zeros instead of ones
    expect(huffman(Uint8Array.of(0x18))).toBeNull();
    // 'a' then 11 one-bits: padding longer than 7 bits
    expect(huffman(Uint8Array.of(0x1f, 0xff))).toBeNull();
    // a lone byte of ones is 8 bits of padding
    expect(huffman(Uint8Array.of(0xff))).toBeNull();
    // the full EOS symbol
    expect(huffman(Uint8Array.of(0xff, 0xff, 0xff, 0xff))).toBeNull();
    expect(huffman(Uint8Array.of(0x1f))).toBe('a');
  });
});

describe('HpackDecoder: RFC 7541 Appendix C', () => {
  it('decodes C.2 single representations', () => {
    const d1 = new HpackDecoder();
    expect(decodeAll(d1, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))).toEqual([['custom-key', 'custom-header']]);
    expect(dynamicTable(d1)).toEqual([['custom-key', 'custom-header']]);
    const d2 = new HpackDecoder();
    expect(decodeAll(d2, hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([[':path', '/sample/path']]);
    expect(decodeAll(d2, hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual([['password', 'secret']]);
    expect(decodeAll(d2, hex('82'))).toEqual([[':method', 'GET']]);
    expect(dynamicTable(d2)).toEqual([]);
  });

  it.each([
    ['C.3 (raw strings)', C3_BLOCKS],
    ['C.4 (Huffman)', C4_BLOCKS],
  ])('decodes the %s request sequence on one decoder', (_label, blocks) => {
    const decoder = new HpackDecoder();
    blocks.forEach((block, i) => {
      expect(decodeAll(decoder, hex(block))).toEqual(C3_C4_REQUESTS[i]);
      expect(dynamicTable(decoder)).toEqual(C3_C4_TABLES[i]);
    });
  });

  it.each([
    ['C.5 (raw strings)', C5_BLOCKS],
    ['C.6 (Huffman)', C6_BLOCKS],
  ])('decodes the %s response sequence with a 256-octet table, evicting', (_label, blocks) => {
    const decoder = new HpackDecoder(256);
    blocks.forEach((block, i) => {
      expect(decodeAll(decoder, hex(block))).toEqual(C5_C6_RESPONSES[i]);
      expect(dynamicTable(decoder)).toEqual(C5_C6_TABLES[i]);
    });
  });
});

describe('HpackEncoder', () => {
  it('produces the C.3 blocks byte for byte', () => {
    const encoder = new HpackEncoder();
    C3_C4_REQUESTS.forEach((fields, i) => {
      expect(encoder.encode(flat(fields)).toString('hex')).toBe(hex(C3_BLOCKS[i]!).toString('hex'));
    });
  });

  it('indexes repeated fields, so a repeated block shrinks to one octet per field', () => {
    const encoder = new HpackEncoder();
    const fields = ['x-tenant', 'acme', 'x-route', 'east-1', 'accept-encoding', 'gzip, deflate', 'content-type', 'application/grpc'];
    const first = encoder.encode(fields);
    const second = encoder.encode(fields);
    expect(second.toString('hex')).toBe('c0bf90be'); // newest entry is 62
    const decoder = new HpackDecoder();
    expect(decodeAll(decoder, first)).toEqual(decodeAll(decoder, second));
  });

  it('never indexes sensitive fields', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const fields = ['authorization', 'Bearer abc', 'cookie', 'a=1', 'set-cookie', 'b=2', 'proxy-authorization', 'Basic xyz'];
    const first = encoder.encode(fields);
    // 6.2.3 with a static name index: 0001 1111, then index - 15
    expect([...first.subarray(0, 2)]).toEqual([0x1f, 23 - 15]);
    expect(encoder.encode(fields).equals(first)).toBe(true);
    expect(decodeAll(decoder, first)).toEqual([
      ['authorization', 'Bearer abc'],
      ['cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['proxy-authorization', 'Basic xyz'],
    ]);
    expect(dynamicTable(decoder)).toEqual([]);
  });

  it('sends long fields without indexing', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const long = 'v'.repeat(5000);
    const block = encoder.encode(['x-big', long, 'content-length', long]);
    expect(block[0]).toBe(0x00); // 6.2.2, new name
    expect(decodeAll(decoder, block)).toEqual([
      ['x-big', long],
      ['content-length', long],
    ]);
    expect(dynamicTable(decoder)).toEqual([]);
    const again = encoder.encode(['x-big', long]);
    expect(again[0]).toBe(0x00);
    expect(again.length).toBe(1 + 1 + 'x-big'.length + 3 + 5000);
  });

  it('signals table size changes, smallest first, and the decoder follows', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    decodeAll(decoder, encoder.encode(['x-a', '1', 'x-b', '2', 'x-c', '3']));
    expect(dynamicTable(decoder)).toHaveLength(3);

    encoder.setMaxTableSize(256);
    const shrunk = encoder.encode(['x-a', '1']);
    expect(shrunk.subarray(0, 3).toString('hex')).toBe('3fe101'); // 256 = 31 + 225
    expect(decodeAll(decoder, shrunk)).toEqual([['x-a', '1']]);
    expect(dynamicTable(decoder)).toHaveLength(3);

    encoder.setMaxTableSize(40); // room for one 36-octet entry: the newest stays
    encoder.setMaxTableSize(100);
    const block = encoder.encode(['x-a', '1']);
    expect(block.subarray(0, 4).toString('hex')).toBe('3f093f45'); // update to 40, then to 100
    expect(decodeAll(decoder, block)).toEqual([['x-a', '1']]);
    expect(dynamicTable(decoder)).toEqual([['x-c', '3']]);

    encoder.setMaxTableSize(0);
    const none = encoder.encode(['x-a', '1']);
    expect(none[0]).toBe(0x20);
    expect(decodeAll(decoder, none)).toEqual([['x-a', '1']]);

    encoder.setMaxTableSize(0); // unchanged: no update owed
    expect(encoder.encode(['x-a', '1'])[0]).toBe(0x00);
    encoder.setMaxTableSize(4096);
    expect(encoder.encode([])).toEqual(hex('3fe11f'));
  });

  it('round-trips many blocks with repeated, changing, sensitive and long fields', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    let encoded = 0;
    let raw = 0;
    for (let i = 0; i < 400; i++) {
      if (i === 150) encoder.setMaxTableSize(512);
      if (i === 250) encoder.setMaxTableSize(0);
      if (i === 300) encoder.setMaxTableSize(4096);
      const fields: Field[] = [
        [':method', i % 3 === 0 ? 'POST' : 'GET'],
        [':scheme', 'https'],
        [':path', `/api/v1/items/${i % 17}`],
        [':authority', 'api.default.svc.clusterset.local'],
        ['user-agent', 'fedgate/0.1'],
        ['x-request-id', `req-${i}`],
        ['x-tenant', `tenant-${i % 5}`],
        ['authorization', `Bearer token-${i % 3}`],
        ['cookie', `s=${i % 4}`],
        ['x-latin1', 'caf\u00e9 \u00ff\u00a0'],
        ['x-long', 'z'.repeat(1500 + (i % 7))],
        ['x-same-twice', 'same'],
        ['x-same-twice', 'same'],
        ['', ''],
      ];
      const block = encoder.encode(flat(fields));
      encoded += block.length;
      raw += fields.reduce((sum, [n, v]) => sum + n.length + v.length, 0);
      expect(decodeAll(decoder, block)).toEqual(fields);
    }
    expect(encoded).toBeLessThan(raw);
  });
});

describe('HpackDecoder: malformed input', () => {
  const cases: Array<[string, string, number]> = [
    ['index 0', '80', 4096],
    ['index beyond the static table with an empty dynamic table', 'be', 4096],
    ['index far beyond the table', 'ff 80 01', 4096],
    ['name index beyond the table', '7e 01 61', 4096],
    ['truncated integer', 'ff', 4096],
    ['truncated integer continuation', 'ff 80', 4096],
    ['integer overflow', 'ff ff ff ff ff 0f', 4096],
    ['too many continuation bytes', 'ff 80 80 80 80 80 80 00', 4096],
    ['truncated string', '40 05 61 62', 4096],
    ['missing value string', '40 01 61', 4096],
    ['string length beyond block', '00 01 61 7f 10', 4096],
    ['Huffman string with zero padding', '00 81 18 01 61', 4096],
    ['Huffman string with padding longer than 7 bits', '00 82 1f ff 01 61', 4096],
    ['Huffman string containing EOS', '00 84 ff ff ff ff 01 61', 4096],
    ['table size update above the maximum', '3f e2 1f', 4096],
    ['table size update above a small maximum', '3f 02', 32],
    ['table size update after a field', '82 20', 4096],
  ];

  it.each(cases)('rejects %s', (_label, block, maxTableSize) => {
    const decoder = new HpackDecoder(maxTableSize);
    expect(() => decoder.decode(hex(block), () => undefined)).toThrow(HpackError);
  });

  it('accepts size updates at the start of a block, up to the maximum', () => {
    const decoder = new HpackDecoder();
    expect(decodeAll(decoder, hex('20 3fe11f 82'))).toEqual([[':method', 'GET']]);
  });

  it('reports a header list above the limit, and keeps the dynamic table in step with the peer', () => {
    const decoder = new HpackDecoder(4096, 100);
    const encoder = new HpackEncoder();
    expect(decodeAll(decoder, encoder.encode(['x-a', 'v'.repeat(60)]))).toHaveLength(1);
    const fields: string[] = [];
    // The second field is past the limit: not emitted, but its table insertion still happens.
    expect(decoder.decode(encoder.encode(['x-b', 'w'.repeat(30), 'x-c', 'z'.repeat(30)]), (name) => fields.push(name))).toBe(false);
    expect(fields).toEqual(['x-b']);
    // The encoder now refers to x-c by its table index; the decoder must still find it.
    expect(decodeAll(decoder, encoder.encode(['x-c', 'z'.repeat(30)]))).toEqual([['x-c', 'z'.repeat(30)]]);
  });
});

/** Just enough of an HTTP/2 client to send our HEADERS and read nghttp2's replies. */
class RawH2Client {
  private buffered = Buffer.alloc(0);
  private headerBlock: Buffer[] = [];
  private headerStream = 0;
  private readonly waiters = new Map<number, { resolve: (r: RawResponse) => void; reject: (e: Error) => void; response: RawResponse }>();
  private failure: Error | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly decoder: HpackDecoder,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  start(settings: Array<[number, number]>): void {
    this.socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const payload = Buffer.alloc(6 * settings.length);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, 6 * i);
      payload.writeUInt32BE(value, 6 * i + 2);
    });
    this.writeFrame(0x4, 0, 0, payload);
  }

  request(streamId: number, block: Buffer): Promise<RawResponse> {
    if (this.failure) return Promise.reject(this.failure);
    const promise = new Promise<RawResponse>((resolve, reject) => {
      this.waiters.set(streamId, { resolve, reject, response: { headers: [], body: Buffer.alloc(0) } });
    });
    this.writeFrame(0x1, 0x1 | 0x4, streamId, block); // END_STREAM | END_HEADERS
    return promise;
  }

  private writeFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const header = Buffer.alloc(9);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(streamId, 5);
    this.socket.write(Buffer.concat([header, payload]));
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) return;
      const type = this.buffered[3]!;
      const flags = this.buffered[4]!;
      const streamId = this.buffered.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buffered.subarray(9, 9 + length);
      this.buffered = this.buffered.subarray(9 + length);
      try {
        this.onFrame(type, flags, streamId, payload);
      } catch (error) {
        this.fail(error as Error);
      }
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const unpad = (data: Buffer): Buffer => ((flags & 0x8) !== 0 ? data.subarray(1, data.length - data[0]!) : data);
    switch (type) {
      case 0x0: {
        const waiter = this.waiters.get(streamId);
        if (waiter === undefined) throw new Error(`DATA on unknown stream ${streamId}`);
        waiter.response.body = Buffer.concat([waiter.response.body, unpad(payload)]);
        if ((flags & 0x1) !== 0) this.complete(streamId);
        return;
      }
      case 0x1: {
        let fragment = unpad(payload);
        if ((flags & 0x20) !== 0) fragment = fragment.subarray(5); // PRIORITY
        this.headerStream = streamId;
        this.headerBlock = [fragment];
        if ((flags & 0x4) !== 0) this.endHeaders();
        if ((flags & 0x1) !== 0) this.complete(streamId);
        return;
      }
      case 0x9:
        if (streamId !== this.headerStream) throw new Error('CONTINUATION on the wrong stream');
        this.headerBlock.push(payload);
        if ((flags & 0x4) !== 0) this.endHeaders();
        return;
      case 0x4:
        if ((flags & 0x1) === 0) this.writeFrame(0x4, 0x1, 0, Buffer.alloc(0));
        return;
      case 0x3:
        throw new Error(`RST_STREAM ${payload.readUInt32BE(0)} on stream ${streamId}`);
      case 0x7:
        throw new Error(`GOAWAY error ${payload.readUInt32BE(4)}: ${payload.subarray(8).toString()}`);
      default:
        return; // WINDOW_UPDATE, PING (nghttp2 answers nothing we need), PRIORITY
    }
  }

  private endHeaders(): void {
    const waiter = this.waiters.get(this.headerStream);
    if (waiter === undefined) throw new Error(`HEADERS on unknown stream ${this.headerStream}`);
    const block = Buffer.concat(this.headerBlock);
    waiter.response.block = block;
    this.decoder.decode(block, (name, value) => waiter.response.headers.push([name, value]));
  }

  private complete(streamId: number): void {
    const waiter = this.waiters.get(streamId)!;
    this.waiters.delete(streamId);
    waiter.resolve(waiter.response);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }
}

interface RawResponse {
  headers: Field[];
  body: Buffer;
  /** The response's header block as it came off the wire. */
  block?: Buffer;
}

describe('HPACK interop with node:http2 (nghttp2)', () => {
  it('nghttp2 decodes our blocks and we decode its Huffman/dynamic-table blocks', async () => {
    const responseFields = (n: number): Field[] => [
      [':status', '200'],
      ['content-type', 'application/json'],
      ['x-static', 'the same in every response'],
      ['x-counter', String(n)],
      ['x-latin1', 'caf\u00e9 na\u00efve \u00ff'],
      ['x-long', `${'L'.repeat(3000)}${n}`],
      ['cache-control', n % 2 === 0 ? 'private' : 'no-store'],
      ['set-cookie', 'a=1'],
      ['set-cookie', `b=${n}`],
    ];
    let served = 0;
    const server = createServer((req, res) => {
      const n = served++;
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of responseFields(n).slice(1)) {
        const previous = headers[name];
        headers[name] = previous === undefined ? value : ([] as string[]).concat(previous, value);
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(req.rawHeaders));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    // A small table of ours makes nghttp2 open with a size update and evict as it goes.
    const decoder = new HpackDecoder(1024);
    const client = new RawH2Client(socket, decoder);
    client.start([
      [0x1, 1024], // SETTINGS_HEADER_TABLE_SIZE
      [0x2, 0], // SETTINGS_ENABLE_PUSH
    ]);
    const encoder = new HpackEncoder();
    let firstBlockLength = 0;
    try {
      for (let i = 0; i < 8; i++) {
        if (i === 3) encoder.setMaxTableSize(256);
        if (i === 5) encoder.setMaxTableSize(4096);
        const request: Field[] = [
          [':method', i % 4 === 3 ? 'POST' : 'GET'],
          [':scheme', 'http'],
          [':path', `/items/${i % 3}`],
          [':authority', `127.0.0.1:${port}`],
          ['user-agent', 'hpack-test'],
          ['accept', '*/*'],
          ['x-request-id', `req-${i}`],
          ['authorization', 'Bearer secret'],
          ['cookie', `session=${i % 2}`],
          ['x-latin1', 'd\u00e9j\u00e0 vu'],
          ['x-long', 'q'.repeat(2000)],
        ];
        const response = await client.request(2 * i + 1, encoder.encode(flat(request)));
        const echoed = JSON.parse(response.body.toString('utf8')) as string[];
        expect(echoed).toEqual(flat(request));
        const date = response.headers.filter(([name]) => name === 'date');
        expect(date).toHaveLength(1);
        expect(response.headers.filter(([name]) => name !== 'date')).toEqual(responseFields(i));
        const block = response.block!;
        // Proof that the interesting paths ran: nghttp2 opens with a size update to our 1024, the
        // 3001-octet x-long only fits in fewer octets Huffman-coded, and later blocks reuse the table.
        if (i === 0) expect(block.subarray(0, 3).toString('hex')).toBe('3fe107');
        expect(block.length).toBeLessThan(3000);
        if (i > 0) expect(block.length).toBeLessThan(firstBlockLength);
        else firstBlockLength = block.length;
      }
    } finally {
      socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
