import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the result (the temporary file is created with it, so it is never wider). */
  mode?: number;
}

/**
 * Writes a file so that a reader, or the next start after a crash, sees either the old content or
 * the new one, never a mix or an empty file: a temporary file beside it is written and fsynced,
 * renamed over the target, and the directory is fsynced so the rename itself survives a power
 * loss. On any failure the temporary file is removed and the error (ENOSPC, EACCES, EROFS …) is
 * thrown with the target's path.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', options.mode ?? 0o644);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, path);
  } catch (error) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the original error is the one worth reporting
      }
    }
    rmSync(temp, { force: true });
    throw Object.assign(error as Error, { message: `cannot write ${path}: ${(error as Error).message}` });
  }
  syncDirectory(dir);
}

/** Makes a rename or a new file in `dir` durable; a file system that cannot fsync a directory is tolerated. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems (and platforms) refuse fsync on a directory; the data itself is synced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
