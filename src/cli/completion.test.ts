/**
 * The completion scripts, run by the real shells: bash calls the function the way `complete -F`
 * does (COMP_WORDS, COMP_CWORD), zsh with its completion builtins replaced by recorders (the
 * scripts' logic, not zsh's line editor). Every command and option of the program is offered, so
 * the scripts cannot drift from the CLI.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bashCompletion, commandSpecs, zshCompletion } from './completion.js';
import { buildProgram } from './program.js';

const program = buildProgram();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedgate-completion-'));
  writeFileSync(join(dir, 'fedgate.bash'), bashCompletion(program));
  writeFileSync(join(dir, 'fedgate.zsh'), zshCompletion(program));
  mkdirSync(join(dir, 'work', 'federation-config'), { recursive: true });
  writeFileSync(join(dir, 'work', 'federal.yaml'), '');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

/** What bash offers after `line` (the last word is the one being completed; "" for a new word). */
function bashComplete(lines: ReadonlyArray<readonly string[]>): string[][] {
  const script = [
    `source ${quote(join(dir, 'fedgate.bash'))}`,
    ...lines.map((words) => `COMP_WORDS=(${words.map(quote).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _fedgate; printf '%s\\n' "\${COMPREPLY[*]}"`),
  ].join('\n');
  const output = execFileSync('bash', ['--norc', '--noprofile', '-c', script], { cwd: join(dir, 'work'), encoding: 'utf8' });
  return output.split('\n').slice(0, lines.length).map((l) => l.split(' ').filter(Boolean).sort());
}

/** What the zsh function offers, its completion builtins replaced by recorders. */
function zshComplete(lines: ReadonlyArray<readonly string[]>): string[][] {
  const stubs = [
    '_describe() { local name=$4; print -r -- "${(j: :)${(@)${(P)name}%%:*}}" }',
    'compadd() { shift; print -r -- "$*" }',
    '_files() { print -r -- "<files>" }',
    '_message() { print -r -- "<message>" }',
    'compdef() { : }',
  ];
  const script = [
    ...stubs,
    `source ${quote(join(dir, 'fedgate.zsh'))}`,
    ...lines.map((words) => `words=(${words.map(quote).join(' ')}); CURRENT=${words.length}; _fedgate`),
  ].join('\n');
  const output = execFileSync('zsh', ['-f', '-c', script], { cwd: join(dir, 'work'), encoding: 'utf8' });
  // zsh itself keeps the candidates that start with the word being completed.
  return output
    .split('\n')
    .slice(0, lines.length)
    .map((l, i) => l.split(' ').filter(Boolean).map((w) => w.replace(/\\:/g, ':')).filter((w) => w === '<files>' || w.startsWith(lines[i]?.at(-1) ?? '')).sort());
}

describe.each([
  ['bash', bashComplete],
  ['zsh', zshComplete],
])('%s completion', (shell, complete) => {
  it('is valid shell syntax', () => {
    expect(() => execFileSync(shell, ['-n', join(dir, `fedgate.${shell}`)])).not.toThrow();
  });

  it.each<[string, string[], string[]]>([
    ['commands by prefix', ['fedgate', 'pol'], ['policy']],
    ['subcommands of a group', ['fedgate', 'policy', ''], ['apply', 'delete', 'help', 'list', 'validate']],
    ['options of a command', ['fedgate', 'policy', 'validate', '--f'], ['--federation-config', '--filename']],
    ['the output formats', ['fedgate', 'policy', 'validate', '-o', ''], ['json', 'text', 'yaml']],
    ['the output formats of status', ['fedgate', 'status', '--output', ''], ['json', 'table', 'text', 'yaml']],
    ['the shells', ['fedgate', 'completion', ''], ['bash', 'zsh']],
    ['options after an option value', ['fedgate', 'policy', 'validate', '-o', 'json', '--fi'], ['--filename']],
  ])('%s', (_name, words, expected) => {
    expect(complete([words])).toEqual([expected]);
  });

  it('file names for options that take a path', () => {
    const [offered] = complete([['fedgate', 'policy', 'validate', '-f', 'fed']]);
    expect(offered).toEqual(shell === 'bash' ? ['federal.yaml', 'federation-config'] : ['<files>']);
  });

  it('every command and every option of the program (generated from it: nothing drifts)', () => {
    const specs = commandSpecs(program);
    const lines = specs.flatMap((spec) => {
      const words = ['fedgate', ...spec.path.split(' ').filter(Boolean)];
      return [
        [...words, ''],
        [...words, '-'],
      ];
    });
    const offered = complete(lines);
    specs.forEach((spec, i) => {
      const commands = offered[i * 2] as string[];
      const options = offered[i * 2 + 1] as string[];
      for (const sub of spec.subcommands) expect({ path: spec.path, offered: commands }).toEqual({ path: spec.path, offered: expect.arrayContaining([sub.name]) });
      for (const option of spec.options) for (const flag of option.flags) expect({ path: spec.path, offered: options }).toEqual({ path: spec.path, offered: expect.arrayContaining([flag]) });
    });
    expect(specs.length).toBeGreaterThan(30);
  });
});
