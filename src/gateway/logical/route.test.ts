import { jest } from '@jest/globals';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import type { ClusterRecord } from '../../model/catalog.js';
import type { RouteRule } from '../../policy/service-policy.js';
import { NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { RoutingTable, type RouteEntry } from '../routing/routing-table.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { PassThrough } from 'node:stream';
import { routeChooser, routeLayer, type DestinationInput, type RouteInput } from './route.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
const http = { name: 'http', port: 8080, protocol: 'http' as const };

function cluster(name: string, region: string, labels: Record<string, string>): ClusterRecord {
  return { name, region, zone: `${region}a`, trustDomain: `${name}.acme.internal`, gatewayAddresses: [`${name}:15443`], labels, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0 };
}

/** us-west (v2) and eu-west (v3) export payments; this gateway is us-east. */
function fixture(unhealthy: string[] = []): { view: ControlView; route: RouteEntry; table: RoutingTable } {
  const clusters = [cluster('us-west', 'us-west-2', { version: 'v2' }), cluster('eu-west', 'eu-west-1', { version: 'v3' })];
  const publisher = new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'us-east-1a', trustDomain: 'us-east.acme.internal', labels: {} },
    {
      federation: 'acme',
      defaults,
      localExports: { exports: new Map(), source: 'test' },
      unhealthy: new Set(unhealthy),
      catalog: {
        epoch: 'e',
        revision: 1,
        policyRevision: 0,
        clusters: new Map(clusters.map((c) => [c.name, c])),
        services: new Map([['default/payments', { namespace: 'default', name: 'payments', ports: [http], exporters: clusters.map((c) => ({ cluster: c.name, ports: [http], readyEndpoints: 1, totalEndpoints: 1, createdAt: 0 })), conflicts: [] }]]),
        bundles: new Map(),
        policies: new Map(),
      },
    },
  );
  const table = new RoutingTable();
  const route = table.resolve(publisher.current, 'default', 'payments', 8080);
  if (!('targets' in route)) throw new Error(route.message);
  return { view: publisher.current, route, table };
}

function rule(destinations: RouteRule['destinations'], over: Partial<RouteRule> = {}): RouteRule {
  return { name: 'split', origin: 'RoutePolicy default/payments', matches: [], destinations, ...over };
}

function input(f: ReturnType<typeof fixture>, r: RouteRule | undefined, tried: string[] = []): DestinationInput {
  return { view: f.view, route: f.route, rule: r, state: { tried: new Set(tried) } };
}

describe('routeChooser', () => {
  it('leaves the choice to the route’s picker when no rule matched', () => {
    const f = fixture();
    expect(routeChooser(f.table, () => 0)(input(f, undefined))).toBeUndefined();
  });

  it('splits by weight with the random roll: 80/20 sends rolls below 0.8 to the first destination', () => {
    const f = fixture();
    const split = rule([{ cluster: 'us-west', weight: 80 }, { cluster: 'eu-west', weight: 20 }]);
    expect(routeChooser(f.table, () => 0)(input(f, split))).toBe('us-west');
    expect(routeChooser(f.table, () => 0.79)(input(f, split))).toBe('us-west');
    expect(routeChooser(f.table, () => 0.8)(input(f, split))).toBe('eu-west');
    expect(routeChooser(f.table, () => 0.999)(input(f, split))).toBe('eu-west');
  });

  it('chooses among clusters by label, and never a destination of weight 0', () => {
    const f = fixture();
    expect(routeChooser(f.table, () => 0.5)(input(f, rule([{ clusterLabels: { version: 'v3' }, weight: 1 }, { cluster: 'us-west', weight: 0 }])))).toBe('eu-west');
    expect(routeChooser(f.table, () => 0.5)(input(f, rule([{ cluster: 'us-west', weight: 0 }])))).toEqual({
      kind: 'failure',
      failure: { code: 'no-healthy-upstream', message: 'route split of RoutePolicy default/payments has no destination with weight above 0', retriable: false },
    });
  });

  it('reports a destination that names no cluster exporting the service as a configuration problem', () => {
    const f = fixture();
    expect(routeChooser(f.table, () => 0)(input(f, rule([{ clusterLabels: { version: 'v9', tier: 'gold' }, weight: 1 }, { cluster: 'us-west', weight: 1 }])))).toEqual({
      kind: 'failure',
      failure: { code: 'no-route', message: 'route split of RoutePolicy default/payments: no clusters labelled version=v9,tier=gold exports payments.default at port 8080', retriable: false },
    });
    expect(routeChooser(f.table, () => 0)(input(f, rule([{ cluster: 'ap-south', weight: 1 }])))).toMatchObject({ failure: { code: 'no-route', message: expect.stringContaining('no cluster ap-south exports') } });
  });

  it('a retry goes to the rule’s other destination once the chosen one was tried, and back to it when all were', () => {
    const f = fixture();
    const split = rule([{ cluster: 'us-west', weight: 90 }, { cluster: 'eu-west', weight: 10 }]);
    expect(routeChooser(f.table, () => 0)(input(f, split, ['us-west']))).toBe('eu-west');
    expect(routeChooser(f.table, () => 0)(input(f, split, ['us-west', 'eu-west']))).toBe('us-west');
  });
});

describe('routeLayer', () => {
  const ok: Outcome = { kind: 'response', response: { status: 200, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster: 'a', discard: () => undefined } };

  function exchange(routes: RouteRule[], path: string): RouteInput {
    return { request: { method: 'GET', path, headers: {}, service: { namespace: 'default', name: 'payments', port: 8080, key: 'default/payments' } }, route: { policy: { routes } }, rule: undefined };
  }

  it('passes on the first rule the request matches, counting the selection; unmatched requests go on without a rule', async () => {
    const metrics = new GatewayMetrics(new Registry());
    const seen: Array<RouteRule | undefined> = [];
    const handler = routeLayer<RouteInput>(metrics)(
      jest.fn(async (ctx: RouteInput) => {
        seen.push(ctx.rule);
        return ok;
      }),
    );
    const v2 = rule([{ cluster: 'us-west', weight: 1 }], { name: 'v2', matches: [{ headers: [], pathPrefix: '/v2' }] });
    const all = rule([{ cluster: 'eu-west', weight: 1 }], { name: 'all' });
    await handler(exchange([v2, all], '/v2/pay'));
    await handler(exchange([v2, all], '/v1/pay'));
    await handler(exchange([v2], '/v1/pay'));
    await handler(exchange([], '/v2/pay'));
    expect(seen.map((r) => r?.name)).toEqual(['v2', 'all', undefined, undefined]);
    expect((await metrics.routeSelections.get()).values.map((v) => [v.labels.route, v.value])).toEqual([
      ['v2', 1],
      ['all', 1],
    ]);
  });
});
