import { get } from 'node:http';
import type { DetectionWatch } from './drill-runner.js';

interface GatewayHealthView {
  health?: Record<string, { alive?: boolean; since?: string }>;
}

function fetchConfig(admin: string, timeoutMs: number): Promise<GatewayHealthView> {
  return new Promise((resolve, reject) => {
    const request = get(`http://${admin}/config`, { timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body) as GatewayHealthView);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${admin} within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/**
 * Detection as the --from gateway saw it: its admin endpoint's `/config` shows the health of each
 * peer cluster with the time it last changed. Polled every `intervalMs`; the reported time is the
 * gateway's own `since`, so the resolution is the gateway's clock, not the poll interval.
 */
export function gatewayHealthWatch(admin: string, cluster: string, intervalMs = 100): DetectionWatch {
  return async (sinceWall, signal) => {
    let lastError: unknown;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const peer = (await fetchConfig(admin, 1000)).health?.[cluster];
        const changed = peer?.since ? Date.parse(peer.since) : Number.NaN;
        // `since` has millisecond resolution and the two clocks are one host's: a change at most
        // a millisecond before the failure was requested still counts as caused by it.
        if (peer && peer.alive === false && changed >= sinceWall - 1) return changed;
        failures = 0;
      } catch (error) {
        lastError = error;
        failures += 1;
        if (failures >= 20) throw lastError instanceof Error ? lastError : new Error(String(lastError));
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return undefined;
  };
}
