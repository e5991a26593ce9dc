import { get } from 'node:http';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** The status of one GET to a fedgate admin endpoint; 0 when nothing answered within a second. */
export function adminStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = get(url, { timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(0));
  });
}

/**
 * Polls a process's `/readyz` until it answers 200. `stillStarting` lets the caller give up early
 * with its own explanation (the process exited); the timeout error names `what`.
 */
export async function waitForReadyz(adminAddress: string, timeoutMs: number, what: string, stillStarting: () => void = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await adminStatus(`http://${adminAddress}/readyz`)) !== 200) {
    stillStarting();
    if (Date.now() > deadline) throw new FedgateError(ErrorCodes.UNAVAILABLE, `${what} was not ready within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
