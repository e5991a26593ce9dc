/**
 * The CLI's contract, in process: exit codes (0 ok, 1 failed or invalid input, 2 usage), the
 * nearest valid name for a mistyped command, option or kind, and `-o text|json|yaml` on every
 * command that prints data.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram, runCli } from './program.js';
import type { CliIo } from './io.js';

async function run(args: string[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (line) => out.push(line), err: (line) => err.push(line) };
  const previous = process.cwd();
  if (cwd) process.chdir(cwd);
  try {
    const code = await runCli(['node', 'fedgate', ...args], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    if (cwd) process.chdir(previous);
  }
}

let dir: string;

const TRAFFIC = 'apiVersion: fedgate.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: payments}\nspec: {service: payments, timeout: 2s}\n';
const TYPO_KIND = 'apiVersion: fedgate.io/v1alpha1\nkind: TraficPolicy\nmetadata: {name: payments}\nspec: {service: payments, timeout: 2s}\n';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedgate-cli-'));
  writeFileSync(join(dir, 'good.yaml'), TRAFFIC);
  writeFileSync(join(dir, 'typo.yaml'), TYPO_KIND);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('exit codes: 0 ok, 1 failed or invalid input, 2 usage', () => {
  it.each<[string, string[], number, string | RegExp]>([
    ['help', ['--help'], 0, ''],
    ['a command\'s help', ['policy', 'validate', '--help'], 0, ''],
    ['version', ['--version'], 0, ''],
    ['no command at all', [], 2, 'Usage: fedgate'],
    ['an unknown command, with the nearest one', ['polcy'], 2, "error: unknown command 'polcy'\n(Did you mean policy?)"],
    ['an unknown subcommand, with the nearest one', ['policy', 'valdate'], 2, "error: unknown command 'valdate'\n(Did you mean validate?)"],
    ['a group without its subcommand', ['policy'], 2, 'Usage: fedgate policy'],
    ['an unknown option, with the nearest one', ['status', '--controler', 'x:1'], 2, "error: unknown option '--controler'\n(Did you mean --controller?)"],
    ['a mistyped required option: the typo is named, not only the missing option', ['policy', 'validate', '--filenme', 'x.yaml'], 2, "error: unknown option '--filenme'\n(Did you mean --filename?)\n(see \"fedgate policy validate --help\")"],
    ['a mistyped option after a variadic one', ['policy', 'validate', '-f', 'a.yaml', 'b.yaml', '--outptu', 'json'], 2, "(Did you mean --output?)"],
    ['a missing required option', ['policy', 'validate'], 2, "error: required option '-f, --filename <path...>' not specified"],
    ['an output format that does not exist', ['policy', 'validate', '-f', 'good.yaml', '-o', 'xml'], 2, "argument 'xml' is invalid. Allowed choices are text, json, yaml."],
    ['a shell without completion', ['completion', 'fish'], 2, "Allowed choices are bash, zsh."],
    ['a file that does not exist', ['policy', 'validate', '-f', 'nowhere.yaml'], 2, 'fedgate: nowhere.yaml: no such file or directory'],
    ['a policy key that is no key', ['policy', 'delete', 'not a key', '--controller', '127.0.0.1:1', '--credentials', '.'], 2, 'is not a policy key'],
    ['a valid policy file', ['policy', 'validate', '-f', 'good.yaml'], 0, ''],
    ['an invalid policy file, with the kind it meant', ['policy', 'validate', '-f', 'typo.yaml'], 1, 'error: typo.yaml:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "TraficPolicy" (did you mean "TrafficPolicy"?)'],
    ['a broken federation-config', ['config', 'validate', 'nowhere'], 1, 'federation.yaml: file not found'],
  ])('%s → %i', async (_name, args, code, stderr) => {
    const result = await run(args, dir);
    expect({ code: result.code, err: result.err }).toEqual({ code, err: typeof stderr === 'string' && stderr !== '' ? expect.stringContaining(stderr) : expect.anything() });
  });
});

/** Commands that print no data of their own (they run a process or print a script). */
const NO_DATA = new Set(['controller', 'gateway', 'demo', 'demo backends', 'completion', 'ca serve']);
/** Commands of other parts of the CLI, given -o by their owners (see the README). */
// drill run has -o with its own choices; ca bundle prints the bundle document itself (--format spiffe|pem).
const NOT_HERE = new Set(['drill run', 'ca bundle']);

function leaves(command: Command, path = ''): Array<{ path: string; command: Command }> {
  if (command.commands.length === 0) return [{ path: path.trim(), command }];
  return command.commands.flatMap((c) => leaves(c, `${path} ${c.name()}`));
}

describe('-o text|json|yaml on every command that prints data', () => {
  const commands = leaves(buildProgram()).filter((c) => !NO_DATA.has(c.path) && !NOT_HERE.has(c.path));

  it('covers the commands it should', () => {
    expect(commands.map((c) => c.path).sort()).toEqual(
      ['ca init', 'ca issue', 'ca rotate activate', 'ca rotate prepare', 'ca rotate retire', 'ca show', 'ca signer-token create', 'token create', 'cluster blackhole', 'cluster drain', 'cluster remove', 'cluster unblackhole', 'cluster undrain', 'config validate', 'export list', 'join', 'policy apply', 'policy delete', 'policy list', 'policy validate', 'status'].sort(),
    );
  });

  it.each(commands.map((c) => [c.path, c.command] as const))('%s', (_path, command) => {
    const output = command.options.find((o) => o.long === '--output');
    expect(output?.short).toBe('-o');
    expect(output?.argChoices?.slice(0, 3)).toEqual(['text', 'json', 'yaml']);
    expect(output?.defaultValue).toBe('text');
  });
});

describe('output formats print the same findings', () => {
  it.each(['json', 'yaml'])('policy validate -o %s', async (format) => {
    const result = await run(['policy', 'validate', '-f', 'typo.yaml', 'good.yaml', '-o', format], dir);
    expect(result.code).toBe(1);
    expect(result.out).toContain(format === 'json' ? '"valid": false' : 'valid: false');
    expect(result.out).toContain('did you mean \\"TrafficPolicy\\"?'.replace(/\\"/g, format === 'json' ? '\\"' : '"'));
  });

  it('config validate -o json reports every file, policies included, even with a broken cluster file', async () => {
    const config = join(dir, 'federation-config');
    mkdirSync(join(config, 'clusters'), { recursive: true });
    mkdirSync(join(config, 'policies'), { recursive: true });
    writeFileSync(join(config, 'federation.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: Federation\nmetadata: {name: acme}\nspec: {trustDomain: acme.internal}\n');
    writeFileSync(join(config, 'clusters', 'east.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: Cluster\nmetadata: {name: east}\nspec:\n  region: r\n  zone: z\n  trustDomain: east.acme.internal\n  exports: [{service: a, ports: [{name: http, port: 80, protocol: http}], consumers: [west]}]\n');
    writeFileSync(join(config, 'clusters', 'west.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: Cluster\nmetadata: {name: west}\nspec:\n  region: r\n   zone: z\n');
    writeFileSync(join(config, 'policies', 'p.yaml'), TYPO_KIND);
    const result = await run(['config', 'validate', config, '-o', 'json']);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.out) as { valid: boolean; clusters: string[]; invalidClusters: string[]; errors: Array<{ text: string }> };
    expect(report).toMatchObject({ valid: false, clusters: ['east'], invalidClusters: ['west'] });
    expect(report.errors.map((e) => e.text)).toEqual([
      'clusters/west.yaml:6: YAML: bad indentation: this line lines up with none of the keys or list items above it',
      'policies/p.yaml:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "TraficPolicy" (did you mean "TrafficPolicy"?)',
    ]);
    const text = await run(['config', 'validate', config]);
    expect(text.out).toBe(`${config}: federation "acme", 2 clusters (east, west), 1 policy documents: 2 errors, 0 warnings`);
  });

  it('config validate of the repository\'s example is valid', async () => {
    const result = await run(['config', 'validate', join(process.cwd(), 'federation-config'), '-o', 'yaml']);
    expect(result.code).toBe(0);
    expect(result.out).toContain('valid: true');
    expect(result.out).toContain('federation: acme');
  });
});
