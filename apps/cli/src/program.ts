import { Command, CommanderError } from 'commander';
import type { HostConfig } from '@imagecache/config';
import type { Logger } from '@imagecache/core';
import { UsageError } from '@imagecache/errors';
import { closeHttpConnections } from '@imagecache/sources';
import { registerClean } from './commands/clean';
import { registerCleanCaches } from './commands/clean-caches';
import { registerFetch } from './commands/fetch';
import { registerInspect } from './commands/inspect';
import { registerLs } from './commands/ls';
import { registerApi } from './commands/api';
import { registerWorker } from './commands/worker';
import { EXIT_CODES } from './exit-codes';
import { openHost, type Host } from './host';
import { createLogger } from './logger';
import { createOutput, type Output } from './output';

/** What every command gets from the program. */
export interface CommandContext {
  output: Output;
  /** An error code a command that printed its result still wants its exit status to say. */
  exitCode?: string;
  signal: AbortSignal;
  openHost(config: HostConfig): Host;
  /** The process's logger (level from --log-level, IMAGECACHE_LOG_LEVEL or the config). */
  logger(): Logger;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit status. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const json = argv.includes('--json');
  const output = createOutput(json);
  let logger: Logger | undefined;
  const ctx: CommandContext = {
    output,
    signal,
    openHost(config) {
      // A person at a shell wants warnings only, unless a level is asked for or the file sets one.
      const fromFile = argv.includes('--config') ? config.logLevel : undefined;
      logger ??= createLogger(logLevelFlag(argv) ?? process.env.IMAGECACHE_LOG_LEVEL ?? fromFile ?? 'warn');
      return openHost(config, logger);
    },
    logger() {
      logger ??= createLogger(logLevelFlag(argv) ?? process.env.IMAGECACHE_LOG_LEVEL ?? 'warn');
      return logger;
    },
  };
  const program = new Command('imagecache')
    .description('a master image cache for bare-metal provisioning')
    .option('--json', 'print one JSON object on stdout (the result or {"error":{code,message}})')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .enablePositionalOptions(false)
    .exitOverride()
    // Errors are reported once, by output.error, in the --json or human form.
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  for (const register of [
    registerFetch,
    registerClean,
    registerCleanCaches,
    registerInspect,
    registerLs,
    registerWorker,
    registerApi,
  ])
    register(program, ctx);
  for (const cmd of program.commands)
    cmd
      .option('--json', 'print one JSON object on stdout')
      .option('--log-level <level>', 'log level')
      .exitOverride();

  if (argv.length === 0) {
    program.outputHelp();
    return EXIT_CODES.USAGE_ERROR!;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode === undefined ? 0 : (EXIT_CODES[ctx.exitCode] ?? 1);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      const hint = json ? '' : ' (see imagecache --help)';
      return output.error(new UsageError(err.message.replace(/^error: /, '') + hint));
    }
    return output.error(err);
  } finally {
    await closeHttpConnections().catch(() => undefined);
  }
}

function logLevelFlag(argv: string[]): string | undefined {
  const i = argv.indexOf('--log-level');
  return i >= 0 ? argv[i + 1] : undefined;
}

export { EXIT_CODES };
