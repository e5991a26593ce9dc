#!/usr/bin/env node
import { runCli } from '../cli/program.js';

// A reader that stops early (`fedgate status | head`) closes the pipe: what is left of the output
// has nowhere to go, which is not an error of the command (it crashed with EPIPE).
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runCli(process.argv);
