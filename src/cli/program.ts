import { Command, CommanderError } from 'commander';
import { closest } from '../config/shape.js';
import { FedgateError, InputError } from '../core/errors.js';
import { registerCaCommand } from './ca.js';
import { ExitWith, UsageError } from './cli-error.js';
import { registerClusterCommand } from './cluster.js';
import { registerCompletionCommand } from './completion.js';
import { registerConfigCommand } from './config.js';
import { registerDemoCommand } from './demo.js';
import { registerDrillCommand } from './drill.js';
import { registerExportCommand } from './export.js';
import { registerControllerCommand } from './controller.js';
import { registerGatewayCommand, registerJoinCommand } from './gateway.js';
import { registerPolicyCommand } from './policy.js';
import { registerStatusCommand } from './status.js';
import { registerTokenCommand } from './token.js';
import { processIo, type CliIo } from './io.js';

export function buildProgram(io: CliIo = processIo): Command {
  const program = new Command('fedgate')
    .description('multi-cluster federation gateway')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  registerCaCommand(program, io);
  registerConfigCommand(program, io);
  registerControllerCommand(program, io);
  registerTokenCommand(program, io);
  registerClusterCommand(program, io);
  registerGatewayCommand(program, io);
  registerJoinCommand(program, io);
  registerExportCommand(program, io);
  registerPolicyCommand(program, io);
  registerStatusCommand(program, io);
  registerDrillCommand(program, io);
  registerDemoCommand(program, io);
  // Last: it describes every command registered before it (itself included).
  registerCompletionCommand(program, io);
  return program;
}

/**
 * An unknown long option, found before commander parses: commander checks required options first,
 * so `policy validate --filenme x` would only say that -f is missing, never that --filenme is a
 * typo of it. Returns commander's wording with the nearest option of the command it was given to.
 */
export function unknownOptionProblem(program: Command, argv: readonly string[]): string | undefined {
  let command = program;
  const tokens = argv.slice(2);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === '--') return undefined;
    if (token.startsWith('--')) {
      const flag = token.split('=')[0] as string;
      const known = [...command.options, ...(command === program ? [] : program.options.filter((o) => o.long === '--version'))];
      const option = known.find((o) => o.long === flag || (o.negate && o.long === flag));
      if (flag === '--help') return undefined;
      if (!option) {
        const flags = [...known.map((o) => o.long).filter((l): l is string => l !== undefined), '--help'];
        const hint = closest(flag.slice(2), flags.map((f) => f.slice(2)));
        return `error: unknown option '${flag}'${hint ? `\n(Did you mean --${hint}?)` : ''}\n(see "${[...commandPath(command), '--help'].join(' ')}")`;
      }
      if ((option.required || option.optional) && !token.includes('=')) {
        i++;
        // A variadic option takes every following word up to the next option.
        if (option.variadic) while (i + 1 < tokens.length && !(tokens[i + 1] as string).startsWith('-')) i++;
      }
      continue;
    }
    if (token.startsWith('-')) {
      // Short options: commander's own checks (and words after a short option taking a value are skipped with it).
      const option = command.options.find((o) => o.short === token);
      if (option && (option.required || option.optional)) {
        i++;
        if (option.variadic) while (i + 1 < tokens.length && !(tokens[i + 1] as string).startsWith('-')) i++;
      }
      continue;
    }
    const sub = command.commands.find((c) => c.name() === token || c.aliases().includes(token));
    if (sub) command = sub;
  }
  return undefined;
}

function commandPath(command: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names;
}

/**
 * Runs the CLI; returns the exit code: 0 ok, 1 failed or invalid input, 2 wrong usage (an unknown
 * command or option, a missing or invalid argument — commander has printed what and the nearest
 * valid name), 3 for a drill that proved nothing. Errors are printed once, with their stable code.
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  const unknown = unknownOptionProblem(program, argv);
  if (unknown) {
    io.err(unknown);
    return 2;
  }
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    // Help and --version end with exit code 0; every other commander error is a usage error.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof ExitWith) return error.exitCode;
    if (error instanceof UsageError) {
      io.err(`fedgate: ${error.message}`);
      return 2;
    }
    if (error instanceof InputError) {
      io.err(`fedgate: invalid input (${error.code}):`);
      for (const line of error.message.split('\n')) io.err(`  ${line}`);
      return 1;
    }
    if (error instanceof FedgateError) {
      io.err(`fedgate: ${error.message} (${error.code})`);
      return 1;
    }
    io.err(`fedgate: unexpected error: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}
