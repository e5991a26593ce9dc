import { openSync, closeSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './control-plane.js';

/*
 * The example federation (federation-config/) listens on fixed addresses, 127.0.0.1:15001-19103,
 * and both `fedgate demo` and the README walkthrough start it. Tests that start it take this lock
 * first, so that two of them (parallel jest workers, or other checkouts on the same machine, hence
 * a file in the system's temp dir) run one after the other instead of failing each other.
 */
const LOCK = join(tmpdir(), 'fedgate-example-addresses.lock');

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // An exited process nobody has reaped yet does not hold anything.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function tryLock(): boolean {
  try {
    const fd = openSync(LOCK, 'wx');
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  let holder = Number.NaN;
  try {
    holder = Number(readFileSync(LOCK, 'utf8').trim());
  } catch {
    return false; // released meanwhile: the next try takes it
  }
  // A holder that died without releasing (a killed jest worker) leaves the file behind.
  if (!Number.isSafeInteger(holder) || holder <= 0 || !running(holder)) {
    try {
      if (readFileSync(LOCK, 'utf8').trim() === String(holder)) unlinkSync(LOCK);
    } catch {
      // another waiter removed it first
    }
  }
  return false;
}

/** Waits until this process holds the example's addresses; call the function it returns to release them. */
export async function lockExampleAddresses(timeoutMs = 120_000): Promise<() => void> {
  await eventually(() => tryLock(), `the example federation's addresses (lock ${LOCK}, held by another test running fedgate demo or the README walkthrough)`, timeoutMs);
  return () => {
    try {
      if (Number(readFileSync(LOCK, 'utf8').trim()) === process.pid) unlinkSync(LOCK);
    } catch {
      // already gone
    }
  };
}
