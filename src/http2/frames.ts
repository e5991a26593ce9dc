/** HTTP/2 frame types, flags, settings and error codes (RFC 9113 §6, §7, §11). */
export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 1,
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
  MAX_HEADER_LIST_SIZE: 6,
} as const;

export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
  INADEQUATE_SECURITY: 12,
  HTTP_1_1_REQUIRED: 13,
} as const;

const ERROR_NAMES = Object.fromEntries(Object.entries(ErrorCode).map(([name, code]) => [code, name])) as Record<number, string>;

export function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `error 0x${code.toString(16)}`;
}

export const FRAME_HEADER_BYTES = 9;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A frame with its 9-byte header written; the payload (if any) is filled in by the caller at offset 9. */
export function frame(type: number, flags: number, streamId: number, payloadLength: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadLength);
  writeFrameHeader(buf, 0, type, flags, streamId, payloadLength);
  return buf;
}

export function writeFrameHeader(buf: Buffer, offset: number, type: number, flags: number, streamId: number, payloadLength: number): void {
  buf[offset] = (payloadLength >>> 16) & 0xff;
  buf[offset + 1] = (payloadLength >>> 8) & 0xff;
  buf[offset + 2] = payloadLength & 0xff;
  buf[offset + 3] = type;
  buf[offset + 4] = flags;
  buf.writeUInt32BE(streamId & 0x7fffffff, offset + 5);
}

export function settingsFrame(settings: ReadonlyArray<readonly [number, number]>): Buffer {
  const buf = frame(FrameType.SETTINGS, 0, 0, settings.length * 6);
  let offset = FRAME_HEADER_BYTES;
  for (const [id, value] of settings) {
    buf.writeUInt16BE(id, offset);
    buf.writeUInt32BE(value, offset + 2);
    offset += 6;
  }
  return buf;
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const buf = frame(FrameType.WINDOW_UPDATE, 0, streamId, 4);
  buf.writeUInt32BE(increment & 0x7fffffff, FRAME_HEADER_BYTES);
  return buf;
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const buf = frame(FrameType.RST_STREAM, 0, streamId, 4);
  buf.writeUInt32BE(code, FRAME_HEADER_BYTES);
  return buf;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const debugBytes = Buffer.from(debug, 'utf8');
  const buf = frame(FrameType.GOAWAY, 0, 0, 8 + debugBytes.length);
  buf.writeUInt32BE(lastStreamId & 0x7fffffff, FRAME_HEADER_BYTES);
  buf.writeUInt32BE(code, FRAME_HEADER_BYTES + 4);
  debugBytes.copy(buf, FRAME_HEADER_BYTES + 8);
  return buf;
}
