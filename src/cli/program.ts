import { Command, CommanderError } from 'commander';
import { FedgateError, InputError } from '../core/errors.js';
import { registerCaCommand } from './ca.js';
import { ExitWith, UsageError } from './cli-error.js';
import { registerClusterCommand } from './cluster.js';
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
  return program;
}

/** Runs the CLI; returns the exit code. Errors are printed once, with their stable code. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
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
