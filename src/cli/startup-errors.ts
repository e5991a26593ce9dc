/**
 * Why a long-running command (controller, gateway) could not start, in the operator's terms: which
 * configured address could not be bound and by which field, which directory could not be written
 * and by which field. Node and grpc-js report these as `EADDRINUSE` / `ENOTDIR` with a stack; the
 * operator needs the field to change.
 */
import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { ErrorCodes, errorMessage, FedgateError } from '../core/errors.js';

export interface ConfiguredListener {
  /** Field path, e.g. `spec.controller.listen`. */
  field: string;
  address: string;
}

export interface ConfiguredDir {
  field: string;
  dir: string;
  code: typeof ErrorCodes.PKI_DIR_UNUSABLE | typeof ErrorCodes.STATE_DIR_UNUSABLE;
}

function bindable(address: string): Promise<string | undefined> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(colon + 1));
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((done) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? 'ERROR'));
    server.listen(port, host, () => server.close(() => done(undefined)));
  });
}

/** The config file of a long-running command: missing, or a directory where a file is expected. */
export function checkConfigFile(file: string, flag: string, example: string): void {
  if (!existsSync(file)) {
    throw new FedgateError(ErrorCodes.CONFIG_NOT_FOUND, `${file}: file not found; give ${flag} the path of ${example}`);
  }
  if (statSync(file).isDirectory()) {
    throw new FedgateError(ErrorCodes.CONFIG_NOT_FOUND, `${file} is a directory, not a file; give ${flag} the path of ${example}`);
  }
}

/**
 * The first configured address this process cannot bind, as the error to report. Checked before a
 * start too: grpc-js logs its own bind failure before reporting it, and a start that is never
 * attempted leaves nothing half-open.
 */
export async function listenProblem(file: string, listeners: readonly ConfiguredListener[]): Promise<FedgateError | undefined> {
  for (const listener of listeners) {
    const problem = await bindable(listener.address);
    if (problem === undefined) continue;
    if (problem === 'EADDRINUSE') {
      return new FedgateError(
        ErrorCodes.ADDRESS_IN_USE,
        `cannot listen on ${listener.address} (${listener.field} in ${file}): the address is already in use by another process; stop it, or set ${listener.field} to a free port`,
      );
    }
    if (problem === 'EACCES') {
      return new FedgateError(
        ErrorCodes.ADDRESS_NOT_PERMITTED,
        `cannot listen on ${listener.address} (${listener.field} in ${file}): permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); set ${listener.field} to a port above 1023`,
      );
    }
    return new FedgateError(ErrorCodes.ADDRESS_NOT_PERMITTED, `cannot listen on ${listener.address} (${listener.field} in ${file}): ${problem}; set ${listener.field} to an address of this host`);
  }
  return undefined;
}

const LISTEN_CODES = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/;

/**
 * The error to report for a failed start: a listen failure names the address and its field (each
 * configured address is tried again once the process's own listeners are closed, so the one that
 * cannot be bound is the one at fault); a file-system failure under a configured directory names
 * the directory and its field. Anything else is returned as it is.
 */
export async function explainStartFailure(error: unknown, file: string, listeners: readonly ConfiguredListener[], dirs: readonly ConfiguredDir[]): Promise<unknown> {
  if (error instanceof FedgateError) return error;
  const errno = error as NodeJS.ErrnoException;
  const text = `${errno.code ?? ''} ${errorMessage(error)}`;
  const listen = LISTEN_CODES.exec(text)?.[1];
  if (listen) {
    const problem = await listenProblem(file, listeners);
    if (problem) return problem;
  }
  const path = typeof errno.path === 'string' ? resolve(errno.path) : undefined;
  if (path && errno.code) {
    const dir = dirs.find((d) => path === resolve(d.dir) || path.startsWith(`${resolve(d.dir)}/`));
    if (dir) {
      const what: Record<string, string> = {
        EACCES: 'permission denied',
        EPERM: 'permission denied',
        EROFS: 'read-only file system',
        ENOSPC: 'no space left on the device',
        ENOTDIR: 'a file is in the way of a directory',
        EEXIST: 'a file is in the way of a directory',
      };
      // A temporary file's random name says nothing; its directory does.
      const where = /^\..*\.tmp$/.test(basename(path)) ? dirname(path) : path;
      return new FedgateError(dir.code, `${dir.dir} (${dir.field} in ${file}) is not usable: ${what[errno.code] ?? errno.code} (${errno.code} on ${where}); make it a writable directory or set ${dir.field} to one`);
    }
  }
  return error;
}
