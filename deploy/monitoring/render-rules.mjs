// Renders rules/fedgate.rules.yml (a Prometheus rules file, for `rule_files:` and promtool) from
// the PrometheusRule in fedgate-alerts.yaml, so the rules exist once. Run after editing the
// PrometheusRule:   node deploy/monitoring/render-rules.mjs
// With --check it writes nothing and exits 1 when the rules file is out of date.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'fedgate-alerts.yaml');
const target = join(here, 'rules', 'fedgate.rules.yml');

export function renderRules(text) {
  const rule = parse(text);
  if (rule?.kind !== 'PrometheusRule' || !Array.isArray(rule.spec?.groups)) throw new Error(`${source}: not a PrometheusRule with spec.groups`);
  const header = '# Generated from ../fedgate-alerts.yaml by ../render-rules.mjs: edit that file, then re-render.\n';
  return header + stringify({ groups: rule.spec.groups }, { lineWidth: 0 });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rendered = renderRules(readFileSync(source, 'utf8'));
  if (process.argv.includes('--check')) {
    if (readFileSync(target, 'utf8') !== rendered) {
      process.stderr.write(`${target} is out of date: node deploy/monitoring/render-rules.mjs\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(target, rendered);
  }
}
