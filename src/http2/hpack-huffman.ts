/**
 * The static Huffman code of RFC 7541 Appendix B, and a decoder for it.
 *
 * The code is canonical, so the 257 code lengths are all the table there is: sorting the symbols
 * by (length, symbol) and counting upwards yields every code of Appendix B (the test checks this
 * against entries copied from the RFC).
 */

/** Symbol 256 is EOS, which may only ever appear as (a prefix of) the padding. */
export const HUFFMAN_EOS = 256;

const LENGTHS_TEXT =
  '13,23,28,28,28,28,28,28,28,24,30,28,28,30,28,28,28,28,28,28,28,28,30,28,28,28,28,28,28,28,28,28,' +
  '6,10,10,12,13,6,8,11,10,10,8,11,8,6,6,6,5,5,5,6,6,6,6,6,6,6,7,8,15,6,12,10,' +
  '13,6,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,8,7,8,13,19,13,14,6,' +
  '15,5,6,5,6,5,6,6,6,5,7,7,6,6,6,5,6,7,6,5,5,6,7,7,7,7,7,15,11,14,13,28,' +
  '20,22,20,20,22,22,22,23,22,23,23,23,23,23,24,23,24,24,22,23,24,23,23,23,23,21,22,23,22,23,23,24,' +
  '22,21,20,22,22,23,23,21,23,22,22,24,21,22,23,23,21,21,22,21,23,22,23,23,20,22,22,22,23,22,22,23,' +
  '26,26,20,19,22,23,22,25,26,26,26,27,27,26,24,25,19,21,26,27,27,26,27,24,21,21,26,26,28,27,27,27,' +
  '20,24,20,21,22,21,21,23,22,22,25,25,24,24,26,23,26,27,26,26,27,27,27,27,27,28,27,27,27,27,27,26,' +
  '30';

/** Code length in bits of each symbol 0..256. */
export const HUFFMAN_CODE_LENGTHS: Uint8Array = Uint8Array.from(LENGTHS_TEXT.split(','), Number);

/** Code of each symbol 0..256, right-aligned in HUFFMAN_CODE_LENGTHS[symbol] bits (at most 30, so a uint32 holds it). */
export const HUFFMAN_CODES: Uint32Array = deriveCanonicalCodes(HUFFMAN_CODE_LENGTHS);

function deriveCanonicalCodes(lengths: Uint8Array): Uint32Array {
  const symbols = Array.from(lengths.keys()).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  let previousLength = lengths[symbols[0]!]!;
  for (let i = 0; i < symbols.length; i++) {
    const symbol = symbols[i]!;
    const length = lengths[symbol]!;
    if (i > 0) code = (code + 1) * 2 ** (length - previousLength);
    previousLength = length;
    codes[symbol] = code;
  }
  return codes;
}

/*
 * Byte-at-a-time decoding: a state is an internal node of the code tree (a complete binary tree
 * with 257 leaves has exactly 256 of them, so a state fits in 8 bits). For every (state, input
 * byte) pair the table holds where the walk ends and which symbols it completed on the way; as no
 * code is shorter than 5 bits, one byte completes at most two symbols.
 *
 * Entry layout: bits 0-7 next state, 8-15 first symbol, 16-23 second symbol, 24-25 symbol count,
 * bit 26 set when the walk completed EOS (always an error inside a string).
 */
const ENTRY_FAIL = 1 << 26;
const { TRANSITIONS, ACCEPTING } = buildDecodeTables();

function buildDecodeTables(): { TRANSITIONS: Uint32Array; ACCEPTING: Uint8Array } {
  // children[2 * node + bit]: >= 0 an internal node, < 0 a leaf holding symbol -(value + 1).
  const children = new Int32Array(2 * 256);
  let nodeCount = 1;
  for (let symbol = 0; symbol <= HUFFMAN_EOS; symbol++) {
    const length = HUFFMAN_CODE_LENGTHS[symbol]!;
    const code = HUFFMAN_CODES[symbol]!;
    let node = 0;
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (children[slot] === 0) children[slot] = nodeCount++;
      node = children[slot]!;
    }
    children[2 * node + (code & 1)] = -(symbol + 1);
  }
  if (nodeCount !== 256) throw new Error(`HPACK Huffman tree has ${nodeCount} internal nodes, expected 256`);

  // A string may end only on a symbol boundary or inside padding: at most 7 bits, all ones
  // (RFC 7541 5.2), i.e. at a node on the all-ones path no deeper than 7.
  const accepting = new Uint8Array(256);
  accepting[0] = 1;
  for (let depth = 1, node = 0; depth <= 7; depth++) {
    node = children[2 * node + 1]!;
    accepting[node] = 1;
  }

  const transitions = new Uint32Array(256 * 256);
  for (let state = 0; state < 256; state++) {
    for (let byte = 0; byte < 256; byte++) {
      let node = state;
      let entry = 0;
      let count = 0;
      for (let bit = 7; bit >= 0; bit--) {
        const child = children[2 * node + ((byte >>> bit) & 1)]!;
        if (child >= 0) {
          node = child;
          continue;
        }
        const symbol = -child - 1;
        if (symbol === HUFFMAN_EOS) {
          entry |= ENTRY_FAIL;
          break;
        }
        entry |= symbol << (8 + 8 * count);
        count++;
        node = 0;
      }
      transitions[(state << 8) | byte] = (entry | (count << 24) | node) >>> 0;
    }
  }
  return { TRANSITIONS: transitions, ACCEPTING: accepting };
}

let scratch = Buffer.allocUnsafe(1024);

/**
 * Decodes the Huffman-coded bytes src[start, end) as a latin1 string; null when they are not a
 * valid encoding (EOS inside, padding longer than 7 bits or not all ones).
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number): string | null {
  // Every symbol takes at least 5 bits.
  const maxOut = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < maxOut) scratch = Buffer.allocUnsafe(Math.max(maxOut, scratch.length * 2));
  const out = scratch;
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const entry = TRANSITIONS[(state << 8) | src[i]!]!;
    if ((entry & ENTRY_FAIL) !== 0) return null;
    const count = entry >>> 24;
    if (count !== 0) {
      out[n++] = entry >>> 8;
      if (count === 2) out[n++] = entry >>> 16;
    }
    state = entry & 0xff;
  }
  if (ACCEPTING[state] === 0) return null;
  return out.toString('latin1', 0, n);
}
