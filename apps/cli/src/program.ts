import { Command, CommanderError } from 'commander';
import type { HostConfig } from '@imagecache/config';
import type { Logger } from '@imagecache/core';
import type { Host } from '@imagecache/host';
import { UsageError } from '@imagecache/errors';
import { registerClean } from './commands/clean';
import { registerCleanCaches } from './commands/clean-caches';
import { registerFetch } from './commands/fetch';
import { registerInspect } from './commands/inspect';
import { registerLs } from './commands/ls';
import { registerApi } from './commands/api';
import { registerWorker } from './commands/worker';
import { EXIT_CODES } from './exit-codes';
import { createOutput, type Output } from './output';
import { cliVersion } from './version';

/**
 * What every command gets from the program. This module and the verbs' declarations (commands/<verb>.ts) load
 * no engine, configuration schema, HTTP client, queue or logger: each verb loads those when it runs
 * (commands/<verb>-run.ts): `--help` and `--version` load commander and the error classes only.
 */
export interface CommandContext {
  output: Output;
  /** An error code a command that printed its result still wants its exit status to say. */
  exitCode?: string;
  signal: AbortSignal;
  openHost(config: HostConfig): Promise<Host>;
  /** The process's logger (level from --log-level, IMAGECACHE_LOG_LEVEL or the config). */
  logger(): Promise<Logger>;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit status. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const json = argv.includes('--json');
  const output = createOutput(json);
  let logger: Logger | undefined;
  // Set once a verb has caches (and so possibly HTTP connections) in this process.
  let hostOpened = false;
  const ctx: CommandContext = {
    output,
    signal,
    async openHost(config) {
      const { openHost } = await import('@imagecache/host');
      const { createLogger } = await import('./logger');
      // A person at a shell wants warnings only, unless a level is asked for or the file sets one.
      const fromFile = argv.includes('--config') ? config.logLevel : undefined;
      logger ??= createLogger(logLevelFlag(argv) ?? process.env.IMAGECACHE_LOG_LEVEL ?? fromFile ?? 'warn');
      hostOpened = true;
      return openHost(config, logger);
    },
    async logger() {
      const { createLogger } = await import('./logger');
      logger ??= createLogger(logLevelFlag(argv) ?? process.env.IMAGECACHE_LOG_LEVEL ?? 'warn');
      return logger;
    },
  };
  const program = new Command('imagecache')
    .description('a master image cache for bare-metal provisioning')
    .option('--json', 'print one JSON object on stdout (the result or {"error":{code,message}})')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .version(cliVersion(), '-V, --version', 'print the version and exit')
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
    // Keep-alive connections would hold the process open; only a verb that opened caches can have any.
    if (hostOpened) {
      const { closeHttpConnections } = await import('@imagecache/sources');
      await closeHttpConnections().catch(() => undefined);
    }
  }
}

function logLevelFlag(argv: string[]): string | undefined {
  const i = argv.indexOf('--log-level');
  return i >= 0 ? argv[i + 1] : undefined;
}

export { EXIT_CODES };
