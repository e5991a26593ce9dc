import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { Sample } from './load-generator.js';
import { renderMarkdown, renderSvg, summaryLines } from './render.js';
import { buildReport, type DrillPlan } from './report.js';

const schema = JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object;
const validate = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(schema);

const plan: DrillPlan = { service: 'payments.default', serviceKey: 'default/payments', protocol: 'http', from: 'eu-west', fail: 'us-east', mode: 'kill', rps: 100, durationMs: 4000, objectives: {} };
const marks = { injectAt: 1000, injectedAt: 1020, restoreAt: 3000, restoredAt: 3400, endAt: 4000 };
const times = { startedAt: new Date('2026-11-21T10:00:00Z'), finishedAt: new Date('2026-11-21T10:00:04Z') };

/** 100 rps for 4 s; `servedBy(at)` says who answered the request due at `at` (undefined: it failed). */
function samples(servedBy: (at: number) => string | undefined): Sample[] {
  return Array.from({ length: 400 }, (_, i) => {
    const at = i * 10;
    const cluster = servedBy(at);
    return cluster ? { at, latencyMs: 5 + (i % 10), ok: true, status: '200', servedBy: cluster } : { at, latencyMs: 1000, ok: false, status: '503', error: 'no_healthy_upstream' };
  });
}

describe('drill report', () => {
  const failsOverAfter100ms = samples((at) => (at < 1000 ? 'us-east' : at < 1100 ? undefined : at < 3050 ? 'us-west' : 'us-east'));

  it('measures failover, errors and failback from what callers saw', () => {
    const report = buildReport({ ...plan, objectives: { maxErrors: 5, maxFailoverSeconds: 1 } }, failsOverAfter100ms, marks, times);
    expect(report.failover).toEqual({ baselineShareOfFailing: 1, firstSuccessElsewhereMs: 100, fullFailoverMs: 100 });
    expect(report.failback).toEqual({ firstSuccessFromRestoredMs: 50, shareAfterRecovery: 1 });
    expect(report.errors).toEqual({ total: 10, byReason: { no_healthy_upstream: 10 } });
    expect(report.phases.baseline).toMatchObject({ requests: 100, errors: 0, servedBy: { 'us-east': 100 }, p50Ms: 9, p99Ms: 14 });
    expect(report.phases.failure).toMatchObject({ requests: 200, errors: 10, servedBy: { 'us-west': 190 } });
    expect(report.phases.recovery).toMatchObject({ fromMs: 3000, toMs: 4000, requests: 100, servedBy: { 'us-west': 5, 'us-east': 95 } });
    expect(report.objectives).toEqual({ maxErrors: 5, maxFailoverSeconds: 1, passed: false, missed: ['10 errors, more than --max-errors 5'] });
    expect(report.warnings).toEqual([]);
    // 4 s at 100 ms bins; the bins add up to every request.
    expect(report.timeline.binMs).toBe(100);
    expect(report.timeline.bins).toHaveLength(40);
    const binned = report.timeline.bins.reduce((sum, b) => sum + b.errors + Object.values(b.servedBy).reduce((s, n) => s + n, 0), 0);
    expect(binned).toBe(400);
    expect(report.timeline.bins[10]).toEqual({ startMs: 1000, servedBy: {}, errors: 10 });
    expect(validate(report)).toBe(true);
  });

  it('reports a failover that never completed, and misses the failover objective', () => {
    // Every other request still lands on the failing cluster until the restore.
    const report = buildReport({ ...plan, objectives: { maxFailoverSeconds: 2 } }, samples((at) => (at % 20 === 0 ? 'us-east' : 'us-west')), marks, times);
    expect(report.failover.fullFailoverMs).toBeNull();
    expect(report.failover.baselineShareOfFailing).toBe(0.5);
    expect(report.objectives.passed).toBe(false);
    expect(report.objectives.missed).toEqual(['never fully failed over; --max-failover-seconds 2']);
    expect(report.warnings).toEqual(['traffic never fully left us-east during the failure phase']);
    expect(validate(report)).toBe(true);
  });

  it('warns when the failing cluster carried no baseline traffic (the drill proves nothing)', () => {
    const report = buildReport(plan, samples(() => 'us-west'), marks, times);
    expect(report.failover.baselineShareOfFailing).toBe(0);
    expect(report.warnings[0]).toMatch(/^us-east served none of the baseline traffic/);
    expect(report.objectives.passed).toBe(true);
    expect(validate(report)).toBe(true);
  });

  it('the schema refuses a report that is not one', () => {
    const report = buildReport(plan, failsOverAfter100ms, marks, times);
    expect(validate({ ...report, schema: 'fedgate.io/drill-report/v0' })).toBe(false);
    expect(validate({ ...report, failover: { ...report.failover, baselineShareOfFailing: 2 } })).toBe(false);
    const { errors: _errors, ...withoutErrors } = report;
    expect(validate(withoutErrors)).toBe(false);
  });

  it('renders a well-formed SVG timeline with a bar per cluster and bin, errors and phase markers', () => {
    const report = buildReport(plan, failsOverAfter100ms, marks, times);
    const svg = renderSvg(report);
    expect(XMLValidator.validate(svg)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg) as { svg: { g: { rect: Array<{ fill: string }> }; line: Array<{ 'stroke-dasharray'?: string }>; text: Array<string | { '#text': string }> } };
    const bars = parsed.svg.g.rect;
    // 10 baseline bins of us-east, 1 error bin, 19 us-west bins, 1 mixed bin (us-west + us-east), 9 us-east bins.
    expect(bars.filter((r) => r.fill === '#d62728')).toHaveLength(1);
    expect(bars).toHaveLength(10 + 1 + 19 + 2 + 9);
    expect(parsed.svg.line.filter((l) => l['stroke-dasharray'])).toHaveLength(2);
    const texts = parsed.svg.text.map((t) => (typeof t === 'string' ? t : t['#text']));
    expect(texts).toEqual(expect.arrayContaining(['kill us-east', 'restore', 'us-east', 'us-west', 'errors']));
  });

  it('renders Markdown and terminal summaries with the same figures', () => {
    const report = buildReport({ ...plan, objectives: { maxErrors: 20 } }, failsOverAfter100ms, marks, times);
    const markdown = renderMarkdown(report);
    expect(markdown).toContain('| First success from another cluster | 100 ms after the failure |');
    expect(markdown).toContain('| failure | 1.00–3.00 s | 200 | 10 | us-west 190 |');
    expect(markdown).toContain('- at most 20 errors: met');
    expect(summaryLines(report)[0]).toBe('drill kill us-east for payments.default, traffic from eu-west at 100 rps for 4 s: PASSED');
    expect(summaryLines(report)).toContain('  errors: 10 of 400 (no_healthy_upstream 10)');
  });
});
