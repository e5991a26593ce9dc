import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /**
   * Permission bits of the file, exactly (the umask does not apply). Private (0600) unless said
   * otherwise: a file that should be world-readable has to ask for it.
   */
  mode?: number;
}

const DEFAULT_MODE = 0o600;

/**
 * A temporary name in the target's own directory: rename(2) is only atomic within one file
 * system, and a dot-name keeps half-written files out of globs such as `*.json`.
 */
function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Makes the rename itself durable. Some file systems refuse fsync on a directory (EISDIR,
 * EINVAL, EPERM on a few network or FUSE mounts): the rename has happened and is as durable as
 * that file system allows, so that is not an error of the write.
 */
function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (error) {
    if (!isUnsupportedDirectorySync(error)) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!isUnsupportedDirectorySync(error)) throw error;
  } finally {
    await handle?.close();
  }
}

function isUnsupportedDirectorySync(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'EINVAL' || code === 'EPERM' || code === 'ENOTSUP';
}

/**
 * Replaces `path` with `data` so that a reader (or a crash) sees either the old file or the new
 * one, never a mix, and the new file has exactly `mode` whatever the old one had: the data goes
 * to a temporary file created with that mode in the same directory, is fsynced, renamed over
 * `path`, and the directory is fsynced. On any failure the temporary file is removed and `path`
 * is untouched. A symlink at `path` is replaced by the file, not followed.
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const mode = options.mode ?? DEFAULT_MODE;
  const temporary = temporaryPath(path);
  let fd: number | undefined;
  try {
    // 'wx': O_CREAT|O_EXCL, so a file planted at the temporary name is never written through.
    fd = openSync(temporary, 'wx', mode);
    fchmodSync(fd, mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw withPath(error, path);
  }
  syncDirectorySync(dirname(path));
}

/** As writeFileAtomicSync, without blocking the event loop. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? DEFAULT_MODE;
  const temporary = temporaryPath(path);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(temporary, 'wx', mode);
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw withPath(error, path);
  }
  await syncDirectory(dirname(path));
}

/** A write error names the file it was for: ENOSPC alone does not say which state file could not be saved. */
function withPath(error: unknown, path: string): unknown {
  // Not `instanceof Error`: errors from node:fs may come from another realm (test VMs).
  const failure = error as { message?: unknown } | null;
  if (failure && typeof failure.message === 'string' && !failure.message.startsWith(`cannot write ${path}`)) failure.message = `cannot write ${path}: ${failure.message}`;
  return error;
}
