import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { Sample } from './load-generator.js';
import { renderMarkdown, renderSvg, summaryLines } from './render.js';
import { buildReport, withPostflight, type DrillPlan } from './report.js';

const schema = JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object;
const validate = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(schema);

const plan: DrillPlan = { service: 'payments.default', serviceKey: 'default/payments', protocol: 'http', from: 'eu-west', fail: 'us-east', mode: 'kill', rps: 100, durationMs: 4000, objectives: {}, failure: { description: 'kill the us-east gateway (SIGKILL)' } };
const marks = { injectAt: 1000, injectedAt: 1020, restoreAt: 3000, restoredAt: 3400, endAt: 4000 };
const times = { startedAt: new Date('2026-11-21T10:00:00Z'), finishedAt: new Date('2026-11-21T10:00:04Z') };

/** 100 rps for 4 s; `servedBy(at)` says who answered the request due at `at` (undefined: it failed). */
function samples(servedBy: (at: number) => string | undefined): Sample[] {
  return Array.from({ length: 400 }, (_, i) => {
    const at = i * 10;
    const cluster = servedBy(at);
    return cluster ? { at, latencyMs: 5 + (i % 10), ok: true, status: '200', servedBy: cluster } : { at, latencyMs: 1000, ok: false, status: '503', error: 'status 503 no_healthy_upstream' };
  });
}

describe('drill report', () => {
  const failsOverAfter100ms = samples((at) => (at < 1000 ? 'us-east' : at < 1100 ? undefined : at < 3050 ? 'us-west' : 'us-east'));

  it('measures failover, errors and failback from what callers saw', () => {
    const report = buildReport({ ...plan, objectives: { maxErrors: 5, maxFailoverSeconds: 1 } }, failsOverAfter100ms, { ...marks, detectedAt: 1080 }, times);
    expect(report.failover).toEqual({ baselineShareOfFailing: 1, detectionMs: 80, firstSuccessElsewhereMs: 100, fullFailoverMs: 100, resolutionMs: 10 });
    expect(report.failback).toEqual({ firstSuccessFromRestoredMs: 50, shareAfterRecovery: 1 });
    expect(report.errors).toEqual({ total: 10, byReason: { 'status 503 no_healthy_upstream': 10 }, causes: [{ cause: 'status 503 no_healthy_upstream', count: 10, firstAtMs: 1000, lastAtMs: 1090 }] });
    expect(report.phases.baseline).toMatchObject({ requests: 100, errors: 0, servedBy: { 'us-east': 100 }, p50Ms: 9, p99Ms: 14, maxMs: 14 });
    expect(report.phases.failure).toMatchObject({ requests: 200, errors: 10, servedBy: { 'us-west': 190 } });
    expect(report.phases.recovery).toMatchObject({ fromMs: 3000, toMs: 4000, requests: 100, servedBy: { 'us-west': 5, 'us-east': 95 } });
    expect(report.verdict).toBe('FAILED');
    expect(report.reason).toBe('10 errors, more than --max-errors 5');
    expect(report.objectives).toEqual({ minBaselineShare: 0.1, maxErrors: 5, maxFailoverSeconds: 1, maxFailbackSeconds: 10, defaulted: ['minBaselineShare', 'maxFailbackSeconds'], passed: false, missed: ['10 errors, more than --max-errors 5'] });
    expect(report.warnings).toEqual([]);
    // 4 s at 100 ms bins; the bins add up to every request.
    expect(report.timeline.binMs).toBe(100);
    expect(report.timeline.bins).toHaveLength(40);
    const binned = report.timeline.bins.reduce((sum, b) => sum + b.errors + Object.values(b.servedBy).reduce((s, n) => s + n, 0), 0);
    expect(binned).toBe(400);
    expect(report.timeline.bins[10]).toEqual({ startMs: 1000, servedBy: {}, errors: 10 });
    expect(validate(report)).toBe(true);
  });

  it('judges by default objectives when none are declared: an error budget of 1% for a kill, failback within 10 s', () => {
    const report = buildReport(plan, failsOverAfter100ms, marks, times);
    expect(report.objectives).toMatchObject({ maxErrors: 4, maxFailbackSeconds: 10, defaulted: ['minBaselineShare', 'maxErrors', 'maxFailbackSeconds'] });
    expect(report.verdict).toBe('FAILED');
    expect(report.reason).toBe("10 errors, more than the default budget of 4 for a kill drill (1% of the requests; set --max-errors)");
    const clean = buildReport(plan, samples((at) => (at < 1000 ? 'us-east' : at < 3050 ? 'us-west' : 'us-east')), marks, times);
    expect(clean.verdict).toBe('PASSED');
    expect(clean.reason).toBe('us-east served 100% of the baseline; 100% failed over after 0.000s, back after 0.050s; 0 errors (at most 4)');
    // A drain is announced: no error is expected, the default budget is 0.
    expect(buildReport({ ...plan, mode: 'drain' }, failsOverAfter100ms, marks, times).objectives.maxErrors).toBe(0);
    expect(validate(clean)).toBe(true);
  });

  it('never reports 100% failed over before the first success elsewhere, and states the resolution', () => {
    // Every request of the failure phase succeeds elsewhere, the first one due 4 ms after the failure.
    const report = buildReport({ ...plan, rps: 100 }, samples((at) => (at < 1000 ? 'us-east' : at < 3000 ? 'us-west' : 'us-east')), { ...marks, injectAt: 996 }, times);
    expect(report.failover.firstSuccessElsewhereMs).toBe(4);
    expect(report.failover.fullFailoverMs).toBe(4);
    expect(report.failover.resolutionMs).toBe(10);
  });

  it('is FAILED when a failover never completed', () => {
    // Every other request still lands on the failing cluster until the restore.
    const report = buildReport({ ...plan, objectives: { maxFailoverSeconds: 2 } }, samples((at) => (at % 20 === 0 ? 'us-east' : 'us-west')), marks, times);
    expect(report.failover.fullFailoverMs).toBeNull();
    expect(report.failover.baselineShareOfFailing).toBe(0.5);
    expect(report.verdict).toBe('FAILED');
    expect(report.objectives.missed).toEqual(['never fully failed over; --max-failover-seconds 2']);
    const undeclared = buildReport(plan, samples((at) => (at % 20 === 0 ? 'us-east' : 'us-west')), marks, times);
    expect(undeclared.verdict).toBe('FAILED');
    expect(undeclared.reason).toBe('never fully failed over: us-east still served 100 of 200 requests of the failure phase, or requests kept failing until the restore');
    expect(validate(report)).toBe(true);
  });

  it('is FAILED when the restored cluster never took traffic back, or too late', () => {
    const never = buildReport(plan, samples((at) => (at < 1000 ? 'us-east' : 'us-west')), marks, times);
    expect(never.verdict).toBe('FAILED');
    expect(never.reason).toBe('no failback: us-east served no request in the 1.000s after the restore (the default --max-failback-seconds 10)');
    const late = buildReport({ ...plan, objectives: { maxFailbackSeconds: 0.5 } }, samples((at) => (at < 1000 ? 'us-east' : at < 3800 ? 'us-west' : 'us-east')), marks, times);
    expect(late.verdict).toBe('FAILED');
    expect(late.reason).toBe('failback took 0.800s, more than --max-failback-seconds 0.5');
    expect(late.failback.firstSuccessFromRestoredMs).toBe(800);
    expect(validate(late)).toBe(true);
  });

  it('is INCONCLUSIVE when the failing cluster carried no baseline traffic (a wrong target proves nothing)', () => {
    const report = buildReport(plan, samples(() => 'us-west'), marks, times);
    expect(report.failover.baselineShareOfFailing).toBe(0);
    expect(report.verdict).toBe('INCONCLUSIVE');
    expect(report.reason).toBe('us-east served 0% of the baseline traffic, less than the 10% a drill needs to prove anything');
    expect(report.objectives.passed).toBe(false);
    expect(validate(report)).toBe(true);
    // Every request failing (a wrong port) is no PASS either, and the cause names the address tried.
    const refused = Array.from({ length: 400 }, (_, i) => ({ at: i * 10, latencyMs: 1, ok: false, status: 'error', error: 'connect ECONNREFUSED 127.0.0.1:17009' }));
    const wrongPort = buildReport(plan, refused, marks, times);
    expect(wrongPort.verdict).toBe('INCONCLUSIVE');
    expect(wrongPort.reason).toBe('us-east served 0% of the baseline traffic, less than the 10% a drill needs to prove anything; 100 of 100 baseline requests failed (connect ECONNREFUSED 127.0.0.1:17009)');
    expect(wrongPort.errors.byReason).toEqual({ 'connect ECONNREFUSED 127.0.0.1:17009': 400 });
  });

  it('is ABORTED with the reason when the drill did not finish, keeping the partial figures', () => {
    const report = buildReport(plan, failsOverAfter100ms.slice(0, 150), { injectAt: 1000, injectedAt: 1000, restoreAt: 1490, restoredAt: 1490, endAt: 1490 }, { ...times, aborted: 'drill aborted: interrupted (SIGINT or SIGTERM)' });
    expect(report.verdict).toBe('ABORTED');
    expect(report.reason).toBe('drill aborted: interrupted (SIGINT or SIGTERM)');
    expect(report.objectives.missed).toEqual([]);
    expect(validate(report)).toBe(true);
  });

  it('is FAILED when the federation status is not whole again after the drill, even though traffic came back', () => {
    const clean = buildReport(plan, samples((at) => (at < 1000 ? 'us-east' : at < 3050 ? 'us-west' : 'us-east')), marks, times);
    expect(clean.verdict).toBe('PASSED');
    const ok = withPostflight(clean, [{ check: 'cluster us-east after the restore', ok: true, detail: 'active, gateway connected' }]);
    expect(ok.verdict).toBe('PASSED');
    expect(ok.postflight).toHaveLength(1);
    const behind = withPostflight(clean, [{ check: 'cluster us-east after the restore', ok: false, detail: '10s after the drill, status shows us-east: catalog 2 revisions behind' }]);
    expect(behind.verdict).toBe('FAILED');
    expect(behind.reason).toBe('cluster us-east after the restore: 10s after the drill, status shows us-east: catalog 2 revisions behind');
    expect(behind.objectives).toMatchObject({ passed: false, missed: [behind.reason] });
    expect(validate(behind)).toBe(true);
    expect(renderMarkdown(behind)).toContain('| cluster us-east after the restore | **failed**: 10s after the drill, status shows us-east: catalog 2 revisions behind |');
  });

  it('the schema refuses a report that is not one', () => {
    const report = buildReport(plan, failsOverAfter100ms, marks, times);
    expect(validate({ ...report, schema: 'fedgate.io/drill-report/v0' })).toBe(false);
    expect(validate({ ...report, failover: { ...report.failover, baselineShareOfFailing: 2 } })).toBe(false);
    expect(validate({ ...report, verdict: 'OK' })).toBe(false);
    const { errors: _errors, ...withoutErrors } = report;
    expect(validate(withoutErrors)).toBe(false);
  });

  it('renders a well-formed SVG timeline with a bar per cluster and bin, errors, the failure window and phase markers', () => {
    const partition: DrillPlan = { ...plan, mode: 'partition', failure: { description: 'drop every packet', direction: 'in', netns: 'fgl-1-0-us-east', rules: 'table inet drill_partition {}' } };
    const report = buildReport(partition, failsOverAfter100ms, { ...marks, detectedAt: 1300 }, times);
    const svg = renderSvg(report);
    expect(XMLValidator.validate(svg)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg) as {
      svg: { g: { rect: Array<{ fill: string }> }; rect: Array<{ class?: string; x: string; width: string; title?: string }>; line: Array<{ 'stroke-dasharray'?: string; class?: string }>; text: Array<string | { '#text': string }> };
    };
    const bars = parsed.svg.g.rect;
    // 10 baseline bins of us-east, 1 error bin, 19 us-west bins, 1 mixed bin (us-west + us-east), 9 us-east bins.
    expect(bars.filter((r) => r.fill === '#d62728')).toHaveLength(1);
    expect(bars).toHaveLength(10 + 1 + 19 + 2 + 9);
    const window = parsed.svg.rect.find((r) => r.class === 'failure-window');
    expect(window).toMatchObject({ title: 'packets dropped' });
    // The window spans inject (1 s) to restore (3 s): half of the plot's 690 px.
    expect(Number(window?.width)).toBeCloseTo(345, 0);
    expect(parsed.svg.line.filter((l) => l['stroke-dasharray'] === '4 3')).toHaveLength(2);
    expect(parsed.svg.line.filter((l) => l.class === 'detected')).toHaveLength(1);
    const texts = parsed.svg.text.map((t) => (typeof t === 'string' ? t : t['#text']));
    expect(texts).toEqual(expect.arrayContaining(['partition us-east (packets in)', 'restore', 'eu-west marks us-east down', 'us-east', 'us-west', 'errors']));
  });

  it('renders Markdown and terminal summaries with the same figures', () => {
    const report = buildReport({ ...plan, objectives: { maxErrors: 20 } }, failsOverAfter100ms, marks, times);
    const markdown = renderMarkdown(report);
    expect(markdown).toContain('**Passed**');
    expect(markdown).toContain('| First success from another cluster | 100 ms after the failure |');
    expect(markdown).toContain('| failure | 1.00–3.00 s | 200 | 10 | us-west 190 |');
    expect(markdown).toContain('- at most 20 errors: met');
    expect(markdown).toContain('- failback within 10 s (default): met');
    expect(markdown).toContain('| status 503 no_healthy_upstream | 10 | 1.00 s | 1.09 s |');
    const lines = summaryLines(report);
    expect(lines[0]).toBe('drill kill us-east for payments.default, traffic from eu-west at 100 rps for 4 s: PASSED');
    expect(lines[1]).toBe('  reason: us-east served 100% of the baseline; 100% failed over after 0.100s, back after 0.050s; 10 errors (at most 20)');
    expect(lines).toContain('  errors: 10 of 400 (at most 20); status 503 no_healthy_upstream: 10');
  });
});
