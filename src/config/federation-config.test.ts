import { describe, expect, it } from '@jest/globals';
import { gatewayDefaultsDocument, gatewayDefaultsShape } from './federation-config.js';
import type { ShapeIssue } from './shape.js';

describe('federation defaults on the wire', () => {
  it('round-trip: every value, durations included, passes the shape again unchanged', () => {
    const written = {
      healthCheck: { interval: '750ms', timeout: '2s', unhealthyThreshold: 4, healthyThreshold: 2 },
      outlierDetection: { consecutiveErrors: 7, interval: '1m30s', baseEjectionTime: '45s', maxEjectionPercent: 30 },
      failover: { overprovisioningFactor: 1.2, panicThreshold: 40 },
      timeout: '20s',
      retries: { attempts: 3, perTryTimeout: '1500ms', budgetPercent: 25, minRetryConcurrency: 5 },
      connectionPool: { maxConnectionsPerPeer: 4, maxPendingRequests: 100, maxRequests: 500, maxConcurrentStreams: 200 },
      certificateTtl: '12h',
    };
    const issues: ShapeIssue[] = [];
    const parsed = gatewayDefaultsShape.check(written, ['defaults'], issues);
    expect(issues).toEqual([]);
    const again: ShapeIssue[] = [];
    const reparsed = gatewayDefaultsShape.check(JSON.parse(JSON.stringify(gatewayDefaultsDocument(parsed as never))), ['defaults'], again);
    expect(again).toEqual([]);
    expect(reparsed).toEqual(parsed);
  });

  it('the built-in defaults survive the trip too', () => {
    const defaults = gatewayDefaultsShape.defaultFactory?.();
    const issues: ShapeIssue[] = [];
    expect(gatewayDefaultsShape.check(gatewayDefaultsDocument(defaults as never), ['defaults'], issues)).toEqual(defaults);
    expect(issues).toEqual([]);
  });
});
