import type { DrillReport, PhaseSummary } from './report.js';

function ms(value: number | null): string {
  return value === null ? 'never' : value < 1000 ? `${value.toFixed(0)} ms` : `${(value / 1000).toFixed(2)} s`;
}

function latency(value: number | null): string {
  return value === null ? '-' : `${value.toFixed(1)} ms`;
}

function served(phase: PhaseSummary): string {
  const entries = Object.entries(phase.servedBy).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '-' : entries.map(([cluster, n]) => `${cluster} ${n}`).join(', ');
}

function failureWords(report: DrillReport): string {
  const { plan } = report;
  return plan.mode === 'partition' && plan.failure.direction ? `partition ${plan.fail} (${plan.failure.direction === 'both' ? 'both directions' : `packets ${plan.failure.direction}`})` : `${plan.mode} ${plan.fail}`;
}

function errorLine(report: DrillReport): string {
  const { errors, objectives } = report;
  const requests = report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests;
  const causes = errors.causes.slice(0, 4).map((c) => `${c.cause}: ${c.count}`);
  if (errors.causes.length > 4) causes.push(`${errors.causes.length - 4} more causes`);
  return `${errors.total} of ${requests} (at most ${objectives.maxErrors}${objectives.defaulted.includes('maxErrors') ? ' by default' : ''})${causes.length > 0 ? `; ${causes.join(', ')}` : ''}`;
}

/** The lines a terminal shows after a drill (and `fedgate demo` prints). */
export function summaryLines(report: DrillReport): string[] {
  const { plan, failover, failback, objectives } = report;
  const resolution = `±${failover.resolutionMs < 10 ? failover.resolutionMs.toFixed(1) : failover.resolutionMs.toFixed(0)} ms`;
  const failed = report.phases.failure;
  return [
    `drill ${failureWords(report)} for ${plan.service}, traffic from ${plan.from} at ${plan.rps} rps for ${(plan.durationMs / 1000).toFixed(0)} s: ${report.verdict}`,
    `  reason: ${report.reason}`,
    `  baseline: ${(failover.baselineShareOfFailing * 100).toFixed(0)}% served by ${plan.fail}; p50 ${latency(report.phases.baseline.p50Ms)}, p99 ${latency(report.phases.baseline.p99Ms)}`,
    `  failover: ${failover.detectionMs !== null ? `${plan.from} marked ${plan.fail} down after ${ms(failover.detectionMs)}; ` : ''}first success elsewhere after ${ms(failover.firstSuccessElsewhereMs)}, 100% failed over after ${ms(failover.fullFailoverMs)} (${resolution}); p50 ${latency(failed.p50Ms)}, p99 ${latency(failed.p99Ms)}, slowest ${latency(failed.maxMs)}`,
    `  errors: ${errorLine(report)}`,
    `  failback: first success from ${plan.fail} after ${ms(failback.firstSuccessFromRestoredMs)} (at most ${objectives.maxFailbackSeconds} s), ${(failback.shareAfterRecovery * 100).toFixed(0)}% of traffic at the end`,
    ...objectives.missed.map((m) => `  objective missed: ${m}`),
    ...report.warnings.map((w) => `  warning: ${w}`),
  ];
}

const VERDICT_WORDS = { PASSED: 'Passed', FAILED: 'Failed', INCONCLUSIVE: 'Inconclusive', ABORTED: 'Aborted' } as const;

export function renderMarkdown(report: DrillReport): string {
  const { plan, phases, failover, failback, errors, objectives } = report;
  const row = (name: string, p: PhaseSummary): string => `| ${name} | ${(p.fromMs / 1000).toFixed(2)}–${Number.isFinite(p.toMs) ? (p.toMs / 1000).toFixed(2) : 'end'} s | ${p.requests} | ${p.errors} | ${served(p)} | ${latency(p.p50Ms)} | ${latency(p.p99Ms)} | ${latency(p.maxMs)} |`;
  const met = (ok: boolean): string => (ok ? 'met' : 'missed');
  const lines = [
    `# Drill: ${plan.mode} ${plan.fail} — ${plan.service}`,
    '',
    `**${VERDICT_WORDS[report.verdict]}** · ${report.startedAt} → ${report.finishedAt}`,
    '',
    `${report.verdict}: ${report.reason}`,
    '',
    `Traffic: ${plan.protocol.toUpperCase()} from ${plan.from} at ${plan.rps} requests/s for ${(plan.durationMs / 1000).toFixed(0)} s. ` +
      `Failure: \`${plan.mode}\` of ${plan.fail} from ${(report.marks.injectAt / 1000).toFixed(2)} s to ${(report.marks.restoreAt / 1000).toFixed(2)} s — ${plan.failure.description}.`,
    '',
  ];
  if (plan.failure.rules) lines.push('Rules (nft):', '', '```', plan.failure.rules.trimEnd(), '```', '');
  for (const [title, checks] of [['Pre-flight', report.preflight], ['Post-flight', report.postflight]] as const) {
    if (checks.length === 0) continue;
    lines.push(`## ${title}`, '', '| Check | Result |', '|---|---|');
    for (const p of checks) lines.push(`| ${p.check} | ${p.ok ? 'ok' : '**failed**'}: ${p.detail.replace(/\|/g, '\\|')} |`);
    lines.push('');
  }
  lines.push(
    '## Results',
    '',
    `Times are due times of requests, exact to one request interval (±${failover.resolutionMs} ms).`,
    '',
    '| | |',
    '|---|---|',
    `| ${plan.fail}'s share of baseline traffic | ${(failover.baselineShareOfFailing * 100).toFixed(1)}% |`,
    `| ${plan.from}'s health checks marked ${plan.fail} down | ${failover.detectionMs !== null ? `${ms(failover.detectionMs)} after the failure` : plan.mode === 'drain' ? 'not watched (a drain is announced, not detected)' : 'not observed'} |`,
    `| First success from another cluster | ${ms(failover.firstSuccessElsewhereMs)} after the failure |`,
    `| 100% failed over | ${ms(failover.fullFailoverMs)} after the failure |`,
    `| Slowest success during the failure | ${latency(phases.failure.maxMs)} |`,
    `| Errors | ${errors.total} |`,
    `| First success from ${plan.fail} after restore | ${ms(failback.firstSuccessFromRestoredMs)} |`,
    `| ${plan.fail}'s share at the end | ${(failback.shareAfterRecovery * 100).toFixed(1)}% |`,
    '',
    '## Phases',
    '',
    '| Phase | Time | Requests | Errors | Served by | p50 | p99 | slowest |',
    '|---|---|---|---|---|---|---|---|',
    row('baseline', phases.baseline),
    row('failure', phases.failure),
    row('recovery', phases.recovery),
    '',
  );
  if (errors.total > 0) {
    lines.push('## Errors by cause', '', '| Cause | Count | First | Last |', '|---|---|---|---|');
    for (const c of errors.causes) lines.push(`| ${c.cause.replace(/\|/g, '\\|')} | ${c.count} | ${(c.firstAtMs / 1000).toFixed(2)} s | ${(c.lastAtMs / 1000).toFixed(2)} s |`);
    lines.push('');
  }
  const byDefault = (name: string): string => (objectives.defaulted.includes(name) ? ' (default)' : '');
  lines.push('## Objectives', '');
  lines.push(`- ${plan.fail} serves at least ${(objectives.minBaselineShare * 100).toFixed(0)}% of the baseline${byDefault('minBaselineShare')}: ${failover.baselineShareOfFailing >= objectives.minBaselineShare ? 'met' : 'missed (INCONCLUSIVE)'}`);
  lines.push(`- at most ${objectives.maxErrors} errors${byDefault('maxErrors')}: ${met(errors.total <= objectives.maxErrors)}`);
  if (objectives.maxFailoverSeconds !== undefined) lines.push(`- full failover within ${objectives.maxFailoverSeconds} s: ${met(failover.fullFailoverMs !== null && failover.fullFailoverMs / 1000 <= objectives.maxFailoverSeconds)}`);
  lines.push(`- failback within ${objectives.maxFailbackSeconds} s${byDefault('maxFailbackSeconds')}: ${met(failback.firstSuccessFromRestoredMs !== null && failback.firstSuccessFromRestoredMs / 1000 <= objectives.maxFailbackSeconds)}`);
  lines.push('');
  if (objectives.missed.length > 0) lines.push('Missed:', '', ...objectives.missed.map((m) => `- ${m}`), '');
  if (report.warnings.length > 0) lines.push('## Warnings', '', ...report.warnings.map((w) => `- ${w}`), '');
  lines.push('![timeline](timeline.svg)', '');
  return lines.join('\n');
}

const PALETTE = ['#2f6fdf', '#e8a33d', '#3aa676', '#9b59b6', '#16a5a5', '#7f8c8d'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/**
 * Requests per second by serving cluster (stacked), errors on top in red, and the phase markers:
 * the picture of a failover at a glance. Plain SVG, no scripts, so it renders anywhere.
 */
export function renderSvg(report: DrillReport): string {
  const width = 900;
  const height = 360;
  const left = 60;
  const right = 150;
  const top = 40;
  const bottom = 50;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const { bins, binMs } = report.timeline;
  const clusters = [...new Set(bins.flatMap((b) => Object.keys(b.servedBy)))].sort();
  const perSecond = (n: number): number => (n * 1000) / binMs;
  const maxRate = Math.max(1, ...bins.map((b) => perSecond(Object.values(b.servedBy).reduce((s, n) => s + n, 0) + b.errors)));
  // Four gridlines at round numbers: the tick is 1, 2, 2.5 or 5 times a power of ten.
  const rough = maxRate / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const tick = ([1, 2, 2.5, 5, 10].map((m) => m * power).find((t) => t >= rough) ?? 10 * power);
  const niceMax = tick * 4;
  const endMs = report.marks.endAt;
  const x = (t: number): number => left + (Math.min(t, endMs) / endMs) * plotW;
  const y = (rate: number): number => top + plotH - (rate / niceMax) * plotH;
  const barW = Math.max(1, (binMs / endMs) * plotW - 0.5);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(`Drill ${report.plan.mode} ${report.plan.fail} for ${report.plan.service}`)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="22" font-size="14" font-weight="bold">${escapeXml(`${report.plan.mode} ${report.plan.fail} — ${report.plan.service} from ${report.plan.from}: ${report.verdict}`)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const rate = (niceMax * i) / 4;
    out.push(`<line x1="${left}" y1="${y(rate).toFixed(1)}" x2="${left + plotW}" y2="${y(rate).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${(y(rate) + 4).toFixed(1)}" text-anchor="end">${Number.isInteger(rate) ? rate : rate.toFixed(1)}</text>`);
  }
  out.push(`<text x="14" y="${top + plotH / 2}" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">requests/s</text>`);
  // The failure window behind the bars: for a partition, the time the packets were dropped.
  const windowLabel = report.plan.mode === 'partition' ? 'packets dropped' : `${report.plan.mode} in effect`;
  out.push(`<rect class="failure-window" x="${x(report.marks.injectAt).toFixed(1)}" y="${top}" width="${Math.max(0, x(report.marks.restoreAt) - x(report.marks.injectAt)).toFixed(1)}" height="${plotH}" fill="${report.plan.mode === 'partition' ? '#fbe3e3' : '#f1f1f1'}"><title>${escapeXml(windowLabel)}</title></rect>`);
  out.push('<g class="bins">');
  for (const bin of bins) {
    let stacked = 0;
    const bx = x(bin.startMs).toFixed(1);
    clusters.forEach((cluster, i) => {
      const n = bin.servedBy[cluster] ?? 0;
      if (n === 0) return;
      const rate = perSecond(n);
      out.push(`<rect x="${bx}" y="${y(stacked + rate).toFixed(1)}" width="${barW.toFixed(1)}" height="${(y(stacked) - y(stacked + rate)).toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}"/>`);
      stacked += rate;
    });
    if (bin.errors > 0) {
      const rate = perSecond(bin.errors);
      out.push(`<rect x="${bx}" y="${y(stacked + rate).toFixed(1)}" width="${barW.toFixed(1)}" height="${(y(stacked) - y(stacked + rate)).toFixed(1)}" fill="#d62728"/>`);
    }
  }
  out.push('</g>');
  const marker = (t: number, label: string, dash = '4 3'): void => {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${top}" x2="${x(t).toFixed(1)}" y2="${top + plotH}" stroke="#333" stroke-dasharray="${dash}"/>`);
    out.push(`<text x="${(x(t) + 3).toFixed(1)}" y="${top + 12}">${escapeXml(label)}</text>`);
  };
  marker(report.marks.injectAt, failureWords(report));
  marker(report.marks.restoreAt, 'restore');
  if (report.marks.detectedAt !== undefined) {
    out.push(`<line class="detected" x1="${x(report.marks.detectedAt).toFixed(1)}" y1="${top + 16}" x2="${x(report.marks.detectedAt).toFixed(1)}" y2="${top + plotH}" stroke="#d62728" stroke-dasharray="1 2"/>`);
    out.push(`<text x="${(x(report.marks.detectedAt) + 3).toFixed(1)}" y="${top + 28}" fill="#d62728">${escapeXml(`${report.plan.from} marks ${report.plan.fail} down`)}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`);
  const step = endMs > 30_000 ? 10_000 : endMs > 10_000 ? 5000 : 1000;
  for (let t = 0; t <= endMs; t += step) out.push(`<text x="${x(t).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${(t / 1000).toFixed(0)}s</text>`);
  const legend = [...clusters.map((c, i) => ({ label: c, color: PALETTE[i % PALETTE.length] as string })), { label: 'errors', color: '#d62728' }];
  legend.forEach((entry, i) => {
    const ly = top + 10 + i * 20;
    out.push(`<rect x="${left + plotW + 16}" y="${ly}" width="12" height="12" fill="${entry.color}"/>`);
    out.push(`<text x="${left + plotW + 34}" y="${ly + 10}">${escapeXml(entry.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
