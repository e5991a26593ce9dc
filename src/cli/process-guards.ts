import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/**
 * Last-resort handlers for long-running processes. A rejected promise nobody awaited is logged and
 * the process keeps serving; an exception that escaped every handler leaves the process in an
 * unknown state, so it is logged and the process exits for its supervisor to restart it (a
 * gateway restarts from its persisted catalog).
 */
export function installProcessGuards(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error({ err: errorMessage(reason) }, 'unhandled promise rejection');
  });
  process.on('uncaughtException', (error) => {
    log.fatal({ err: errorMessage(error), stack: error.stack }, 'uncaught exception; exiting');
    log.flush();
    setTimeout(() => process.exit(70), 100).unref();
  });
}
