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

/** The lines a terminal shows after a drill (and `fedgate demo` prints). */
export function summaryLines(report: DrillReport): string[] {
  const { plan, failover, failback, errors, objectives } = report;
  return [
    `drill ${plan.mode} ${plan.fail} for ${plan.service}, traffic from ${plan.from} at ${plan.rps} rps for ${(plan.durationMs / 1000).toFixed(0)} s: ${objectives.passed ? 'PASSED' : 'FAILED'}`,
    `  baseline: ${(failover.baselineShareOfFailing * 100).toFixed(0)}% served by ${plan.fail}; p50 ${latency(report.phases.baseline.p50Ms)}, p99 ${latency(report.phases.baseline.p99Ms)}`,
    `  failover: first success elsewhere after ${ms(failover.firstSuccessElsewhereMs)}, 100% failed over after ${ms(failover.fullFailoverMs)}; p50 ${latency(report.phases.failure.p50Ms)}, p99 ${latency(report.phases.failure.p99Ms)}`,
    `  errors: ${errors.total} of ${report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests}${errors.total > 0 ? ` (${Object.entries(errors.byReason).map(([r, n]) => `${r} ${n}`).join(', ')})` : ''}`,
    `  failback: first success from ${plan.fail} after ${ms(failback.firstSuccessFromRestoredMs)}, ${(failback.shareAfterRecovery * 100).toFixed(0)}% of traffic at the end`,
    ...objectives.missed.map((m) => `  objective missed: ${m}`),
    ...report.warnings.map((w) => `  warning: ${w}`),
  ];
}

export function renderMarkdown(report: DrillReport): string {
  const { plan, phases, failover, failback, errors, objectives } = report;
  const row = (name: string, p: PhaseSummary): string => `| ${name} | ${(p.fromMs / 1000).toFixed(2)}–${Number.isFinite(p.toMs) ? (p.toMs / 1000).toFixed(2) : 'end'} s | ${p.requests} | ${p.errors} | ${served(p)} | ${latency(p.p50Ms)} | ${latency(p.p99Ms)} |`;
  const lines = [
    `# Drill: ${plan.mode} ${plan.fail} — ${plan.service}`,
    '',
    `**${objectives.passed ? 'Passed' : 'Failed'}** · ${report.startedAt} → ${report.finishedAt}`,
    '',
    `Traffic: ${plan.protocol.toUpperCase()} from ${plan.from} at ${plan.rps} requests/s for ${(plan.durationMs / 1000).toFixed(0)} s. ` +
      `Failure: \`${plan.mode}\` of ${plan.fail} from ${(report.marks.injectAt / 1000).toFixed(2)} s to ${(report.marks.restoreAt / 1000).toFixed(2)} s.`,
    '',
    '## Results',
    '',
    '| | |',
    '|---|---|',
    `| ${plan.fail}'s share of baseline traffic | ${(failover.baselineShareOfFailing * 100).toFixed(1)}% |`,
    `| First success from another cluster | ${ms(failover.firstSuccessElsewhereMs)} after the failure |`,
    `| 100% failed over | ${ms(failover.fullFailoverMs)} after the failure |`,
    `| Errors | ${errors.total} |`,
    `| First success from ${plan.fail} after restore | ${ms(failback.firstSuccessFromRestoredMs)} |`,
    `| ${plan.fail}'s share at the end | ${(failback.shareAfterRecovery * 100).toFixed(1)}% |`,
    '',
    '## Phases',
    '',
    '| Phase | Time | Requests | Errors | Served by | p50 | p99 |',
    '|---|---|---|---|---|---|---|',
    row('baseline', phases.baseline),
    row('failure', phases.failure),
    row('recovery', phases.recovery),
    '',
  ];
  if (errors.total > 0) {
    lines.push('## Errors by reason', '', '| Reason | Count |', '|---|---|');
    for (const [reason, count] of Object.entries(errors.byReason).sort((a, b) => b[1] - a[1])) lines.push(`| ${reason} | ${count} |`);
    lines.push('');
  }
  lines.push('## Objectives', '');
  if (objectives.maxErrors === undefined && objectives.maxFailoverSeconds === undefined) lines.push('None declared (use `--max-errors` and `--max-failover-seconds`).');
  if (objectives.maxErrors !== undefined) lines.push(`- at most ${objectives.maxErrors} errors: ${errors.total <= objectives.maxErrors ? 'met' : 'missed'}`);
  if (objectives.maxFailoverSeconds !== undefined) lines.push(`- full failover within ${objectives.maxFailoverSeconds} s: ${failover.fullFailoverMs !== null && failover.fullFailoverMs / 1000 <= objectives.maxFailoverSeconds ? 'met' : 'missed'}`);
  lines.push('');
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
  out.push(`<text x="${left}" y="22" font-size="14" font-weight="bold">${escapeXml(`${report.plan.mode} ${report.plan.fail} — ${report.plan.service} from ${report.plan.from}: ${report.objectives.passed ? 'passed' : 'FAILED'}`)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const rate = (niceMax * i) / 4;
    out.push(`<line x1="${left}" y1="${y(rate).toFixed(1)}" x2="${left + plotW}" y2="${y(rate).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${(y(rate) + 4).toFixed(1)}" text-anchor="end">${Number.isInteger(rate) ? rate : rate.toFixed(1)}</text>`);
  }
  out.push(`<text x="14" y="${top + plotH / 2}" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">requests/s</text>`);
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
  const marker = (t: number, label: string): void => {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${top}" x2="${x(t).toFixed(1)}" y2="${top + plotH}" stroke="#333" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${(x(t) + 3).toFixed(1)}" y="${top + 12}">${escapeXml(label)}</text>`);
  };
  marker(report.marks.injectAt, `${report.plan.mode} ${report.plan.fail}`);
  marker(report.marks.restoreAt, 'restore');
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
