/**
 * fedgate's alert rules (deploy/monitoring/) checked by Prometheus's own tool, promtool (Debian
 * package `prometheus`, installed by tools/setup.sh):
 *
 * - `promtool check rules` accepts the rules file (PromQL, templates, durations);
 * - `promtool test rules` runs the unit tests in deploy/monitoring/tests/, which feed synthetic
 *   series and state when each alert fires, with which labels and annotations;
 * - the rules file is the PrometheusRule's groups, rendered by render-rules.mjs;
 * - every alert has a severity, a summary, a description and a runbook section in
 *   deploy/monitoring/README.md, and a unit test that makes it fire and one where it does not;
 * - a broken rule or a changed threshold makes promtool fail (the checks have teeth).
 *
 * A failure shows promtool's own output.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = process.cwd();
const MONITORING = join(ROOT, 'deploy', 'monitoring');
const RULES = join(MONITORING, 'rules', 'fedgate.rules.yml');
const TESTS = join(MONITORING, 'tests');
const TEST_FILES = readdirSync(TESTS)
  .filter((f) => f.endsWith('.yml'))
  .sort();

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}
interface UnitTests {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
}

function promtool(args: string[], cwd = MONITORING): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw new Error(`promtool ${args.join(' ')}: ${result.error.message} (promtool comes with the Debian package "prometheus": run tools/setup.sh)`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const prometheusRule = (): { spec: { groups: Group[] } } => parse(readFileSync(join(MONITORING, 'fedgate-alerts.yaml'), 'utf8'));
const alerts = (): Rule[] => prometheusRule().spec.groups.flatMap((g) => g.rules.filter((r) => r.alert !== undefined));

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** A copy of the rules and their unit tests in a temp directory, with `edit` applied to the rules. */
function withEditedRules<T>(edit: (rules: string) => string, run: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-rules-'));
  try {
    mkdirSync(join(dir, 'rules'));
    mkdirSync(join(dir, 'tests'));
    const original = readFileSync(RULES, 'utf8');
    const edited = edit(original);
    expect(edited).not.toBe(original);
    writeFileSync(join(dir, 'rules', 'fedgate.rules.yml'), edited);
    for (const file of TEST_FILES) copyFileSync(join(TESTS, file), join(dir, 'tests', file));
    return run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('alert rules (deploy/monitoring)', () => {
  it('pass promtool check rules', () => {
    const result = promtool(['check', 'rules', RULES]);
    expect(result).toMatchObject({ status: 0 });
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('pass their unit tests (promtool test rules deploy/monitoring/tests/*.yml)', () => {
    expect(TEST_FILES.length).toBeGreaterThanOrEqual(5);
    const result = promtool(['test', 'rules', ...TEST_FILES.map((f) => join('tests', f))]);
    expect(result).toMatchObject({ status: 0 });
    expect(result.output.match(/SUCCESS/g)).toHaveLength(TEST_FILES.length);
  });

  it('are the PrometheusRule\'s groups (rules/fedgate.rules.yml rendered by render-rules.mjs)', () => {
    const plain = parse(readFileSync(RULES, 'utf8')) as { groups: Group[] };
    expect(plain.groups).toEqual(prometheusRule().spec.groups);
    const check = spawnSync(process.execPath, [join(MONITORING, 'render-rules.mjs'), '--check'], { encoding: 'utf8' });
    expect({ status: check.status, stderr: check.stderr }).toEqual({ status: 0, stderr: '' });
    for (const file of TEST_FILES) expect((parse(readFileSync(join(TESTS, file), 'utf8')) as UnitTests).rule_files).toEqual(['../rules/fedgate.rules.yml']);
  });

  it('give every alert a severity, a summary, a description and a runbook section in README.md', () => {
    const readme = readFileSync(join(MONITORING, 'README.md'), 'utf8');
    const anchors = new Set([...readme.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchorOf(m[1] as string)));
    expect(alerts().length).toBeGreaterThanOrEqual(14);
    for (const rule of alerts()) {
      const id = `${rule.alert} (${rule.labels?.severity})`;
      expect({ id, severity: ['warning', 'critical'].includes(rule.labels?.severity ?? '') }).toEqual({ id, severity: true });
      expect({ id, annotations: Object.keys(rule.annotations ?? {}).sort() }).toEqual({ id, annotations: ['description', 'runbook_url', 'summary'] });
      expect(rule.annotations?.runbook_url).toBe(`deploy/monitoring/README.md#${(rule.alert as string).toLowerCase()}`);
      const anchor = (rule.annotations?.runbook_url as string).split('#')[1] as string;
      expect({ id, runbookSection: anchors.has(anchor) }).toEqual({ id, runbookSection: true });
      expect(rule.alert).toMatch(/^Fedgate[A-Z]\w+$/);
    }
  });

  it('have a unit test where each alert fires and one where it does not', () => {
    const fired = new Set<string>();
    const quiet = new Set<string>();
    for (const file of TEST_FILES) {
      for (const test of (parse(readFileSync(join(TESTS, file), 'utf8')) as UnitTests).tests) {
        for (const check of test.alert_rule_test ?? []) ((check.exp_alerts ?? []).length > 0 ? fired : quiet).add(check.alertname);
      }
    }
    const names = [...new Set(alerts().map((r) => r.alert as string))].sort();
    expect(names.filter((n) => !fired.has(n))).toEqual([]);
    expect(names.filter((n) => !quiet.has(n))).toEqual([]);
  });

  it('fail promtool check with its message when a rule is broken', () => {
    const result = withEditedRules(
      (rules) => rules.replace('expr: sum(fedgate_controller_leader) == 0', 'expr: sum(fedgate_controller_leader == 0'),
      (dir) => promtool(['check', 'rules', join(dir, 'rules', 'fedgate.rules.yml')], dir),
    );
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/FedgateControllerNoLeader|unclosed left parenthesis|parse error/);
  });

  it('fail their unit tests when a threshold or a guard changes', () => {
    // The error ratio threshold: 15% errors no longer fire at 20%.
    const ratio = withEditedRules(
      (rules) => rules.replace(/\) > 0\.05\n(\s+)and\n(\s+)sum by \(source_cluster, destination_cluster\)/, ') > 0.2\n$1and\n$2sum by (source_cluster, destination_cluster)'),
      (dir) => promtool(['test', 'rules', join('tests', 'gateways.yml')], dir),
    );
    expect(ratio.status).not.toBe(0);
    expect(ratio.output).toContain('alertname: FedgateClusterErrorRatioHigh');
    // Without the minimum rate, the trickle of failing requests from eu-west would fire.
    const minimum = withEditedRules(
      (rules) => rules.replace(/ > 0\.05\n(\s+)and\n\s+sum by \(source_cluster, destination_cluster\) \(rate\([^\n]*\) > 0\.1\n/, ' > 0.05\n'),
      (dir) => promtool(['test', 'rules', join('tests', 'gateways.yml')], dir),
    );
    expect(minimum.status).not.toBe(0);
    expect(minimum.output).toContain('destination_cluster="us-east", severity="warning", source_cluster="eu-west"');
    // The bundle expiry horizon of 7 days.
    const horizon = withEditedRules(
      (rules) => rules.replace('fedgate_certificate_expiry_timestamp_seconds{kind="bundle"} - time() < 7 * 86400', 'fedgate_certificate_expiry_timestamp_seconds{kind="bundle"} - time() < 6 * 86400'),
      (dir) => promtool(['test', 'rules', join('tests', 'certificates.yml')], dir),
    );
    expect(horizon.status).not.toBe(0);
    expect(horizon.output).toContain('alertname: FedgateTrustBundleExpiringSoon');
  });
});
