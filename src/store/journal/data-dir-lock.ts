import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, StoreError } from '../../core/errors.js';
import { diskError, errnoOf } from './disk-error.js';

export const LOCK_FILE = 'controller.lock';
/** The owner touches its lock this often, so a lock from another host shows whether it is kept. */
export const LOCK_REFRESH_MS = 10_000;
/**
 * A lock written on another host (a volume moved to a new pod) whose owner cannot be asked: stale
 * once untouched for this long.
 */
const FOREIGN_LOCK_STALE_MS = 60_000;

interface Owner {
  pid: number;
  host: string;
  /** The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for the owner. */
  start: string;
}

/**
 * One controller per data dir: a lock file created exclusively (O_EXCL) holding the owner's pid.
 * A lock left by a process that is gone (SIGKILL, power loss) is taken over; a live owner's is
 * refused with an error naming it. The owner also refreshes the file's mtime: a lock from another
 * host, whose pid means nothing here, is stale once it has not been refreshed for a minute.
 */
export class DataDirLock {
  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {}

  static async acquire(dir: string): Promise<DataDirLock> {
    const file = join(dir, LOCK_FILE);
    const content = `${JSON.stringify({ pid: process.pid, host: hostname(), start: processStart(process.pid) } satisfies Owner)}\n`;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (createExclusive(file, content)) return new DataDirLock(file, content);
      let raw: string;
      try {
        raw = readFileSync(file, 'utf8');
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') continue;
        throw diskError('read the lock file', file, error);
      }
      const owner = parseOwner(raw);
      if (!owner) {
        // Either a lock whose writer died between creating and writing it, or one being written
        // right now: only an old one is stale.
        if (Date.now() - mtimeMs(file) < 2000) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
      } else if (isAlive(owner, file)) {
        const where = owner.host === hostname() ? '' : ` on host ${owner.host} (taken over once not refreshed for ${FOREIGN_LOCK_STALE_MS / 1000} s)`;
        const self = owner.pid === process.pid && owner.host === hostname() ? ' (this process)' : '';
        throw new StoreError(
          ErrorCodes.STORE_UNAVAILABLE,
          `data dir ${dir} is in use by controller pid ${owner.pid}${where}${self}; the embedded store allows one replica — use Redis for several (lock file ${file})`,
        );
      }
      takeOver(file, raw);
    }
    throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `data dir ${dir}: could not take the lock file ${file}: it kept changing`);
  }

  /** Marks the lock as kept (see FOREIGN_LOCK_STALE_MS); failures are left to the next refresh. */
  refresh(): void {
    try {
      const now = new Date();
      utimesSync(this.file, now, now);
    } catch {
      // A read-only or vanished file: the store reports its own errors.
    }
  }

  /** Removes the lock file, unless it is no longer ours. */
  async release(): Promise<void> {
    try {
      if (readFileSync(this.file, 'utf8') === this.content) unlinkSync(this.file);
    } catch {
      // Gone already, or unreadable: nothing of ours to remove.
    }
  }
}

function createExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw diskError('create the lock file', file, error);
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    // An empty lock would block the next start for nothing.
    try {
      unlinkSync(file);
    } catch {
      // Reported below; the next start treats an empty old lock as stale.
    }
    throw diskError('write the lock file', file, error);
  }
  closeSync(fd);
  return true;
}

/**
 * Removes a stale lock without ever removing a fresh one: the lock is renamed aside (atomic, so
 * only one of several starting processes gets it) and checked; if what was moved is not the stale
 * lock that was judged (another process took over in between), it is put back.
 */
function takeOver(file: string, stale: string): void {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw diskError('take over the stale lock file', file, error);
  }
  let moved = '';
  try {
    moved = readFileSync(aside, 'utf8');
  } catch {
    // Read as not ours: put back below.
  }
  if (moved !== stale) {
    try {
      linkSync(aside, file);
    } catch {
      // Someone took the lock meanwhile: theirs stands.
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // Already gone.
  }
}

function parseOwner(raw: string): Owner | undefined {
  try {
    const value = JSON.parse(raw) as Partial<Owner>;
    if (Number.isSafeInteger(value.pid) && (value.pid as number) > 0 && typeof value.host === 'string') {
      return { pid: value.pid as number, host: value.host, start: typeof value.start === 'string' ? value.start : '' };
    }
  } catch {
    // Not a lock we can read.
  }
  return undefined;
}

function isAlive(owner: Owner, file: string): boolean {
  // A process on another host (a volume that moved) cannot be asked: its refreshes tell.
  if (owner.host !== hostname()) return Date.now() - mtimeMs(file) < FOREIGN_LOCK_STALE_MS;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if (errnoOf(error) === 'ESRCH') return false;
  }
  const start = processStart(owner.pid);
  return owner.start === '' || start === '' || start === owner.start;
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
