import { createServer } from 'node:net';

/*
 * Ports for the listeners tests start. They come from below the kernel's ephemeral range
 * (32768–60999 by default): a port asked from the kernel with listen(0) is free only until the
 * probe closes it, and the heavy client traffic of parallel suites can take it as the local port
 * of an outgoing connection before the real listener binds it. Each jest worker probes its own
 * slice of 20000–32767, so parallel workers never pick the same port either.
 */
const FIRST = 20_000;
const LAST = 32_767;
const WORKERS = 4;
const SLICE = Math.floor((LAST - FIRST + 1) / WORKERS);
const worker = Math.max(0, (Number(process.env.JEST_WORKER_ID ?? '1') - 1) % WORKERS);
const sliceStart = FIRST + worker * SLICE;
let next = sliceStart + Math.floor(Math.random() * SLICE);

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago and that no other test of this run will be given. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < SLICE; tries++) {
    const port = next;
    next = next + 1 >= sliceStart + SLICE ? sliceStart : next + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${sliceStart}-${sliceStart + SLICE - 1}`);
}

export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePort());
  return ports;
}
