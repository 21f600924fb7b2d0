import type { Command } from 'commander';
import type { CommandContext } from '../program';

export interface ApiFlags {
  config: string;
  port: string;
  bind: string;
  boardUser?: string;
  boardPasswordFile?: string;
  boardAuth: boolean;
  readOnly?: boolean;
  waitTimeout?: string;
  logLevel?: string;
}

export function registerApi(program: Command, ctx: CommandContext): void {
  program
    .command('api')
    .description(
      'serve the HTTP API (/v1), Bull Board (/board), /metrics, /healthz and /readyz until SIGTERM/SIGINT; needs `redis` in the config. ' +
        'Board credentials: IMAGECACHE_BOARD_USERNAME and IMAGECACHE_BOARD_PASSWORD (or --board-user and --board-password-file)',
    )
    .requiredOption(
      '--config <file>',
      'host configuration (its redis; its host and caches are shown on the board)',
    )
    .option('--port <port>', 'port to listen on', '8080')
    .option('--bind <address>', 'address to listen on', '127.0.0.1')
    .option('--board-user <name>', 'board (and /v1) basic-auth user (default IMAGECACHE_BOARD_USERNAME)')
    .option('--board-password-file <file>', 'file holding the password (default IMAGECACHE_BOARD_PASSWORD)')
    .option('--no-board-auth', 'serve the board and /v1 without credentials: loopback --bind only')
    .option(
      '--read-only',
      'GET only: the board shows queues and jobs, /v1 reads jobs; every change is refused (403)',
    )
    .option(
      '--wait-timeout <seconds>',
      'default time a waiting request waits for its job, then 504 QUEUE_TIMEOUT (0: no limit)',
      '1800',
    )
    .action(async (flags: ApiFlags, command: Command) =>
      (await import('./api-run')).runApi(ctx, flags, command),
    );
}
