import * as fs from 'node:fs';
import type { Command } from 'commander';
import { loadConfig, requireDestinationPolicy } from '@imagecache/config';
import { UsageError } from '@imagecache/errors';
import type { CommandContext } from '../program';
import type { ApiFlags } from './api';

/** `imagecache api`: the HTTP API and Bull Board until the signal. */
export async function runApi(ctx: CommandContext, flags: ApiFlags, command: Command): Promise<void> {
  // --log-level may be parsed as the program's option or as this command's.
  const logLevel = (command.optsWithGlobals() as { logLevel?: string }).logLevel ?? flags.logLevel;
  const config = loadConfig({ file: flags.config });
  if (!config.redis)
    throw new UsageError('the configuration has no `redis` section (or IMAGECACHE_REDIS_URL)');
  requireDestinationPolicy(config, 'api');
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be a port number, got ${flags.port}`);
  const waitTimeout = Number(flags.waitTimeout ?? '1800');
  if (!Number.isFinite(waitTimeout) || waitTimeout < 0)
    throw new UsageError(`--wait-timeout must be seconds, got ${flags.waitTimeout}`);
  const username = flags.boardUser ?? nonEmpty(process.env.IMAGECACHE_BOARD_USERNAME);
  const password = flags.boardPasswordFile
    ? fs.readFileSync(flags.boardPasswordFile, 'utf8').replace(/\r?\n$/, '')
    : nonEmpty(process.env.IMAGECACHE_BOARD_PASSWORD);
  const withAuth = flags.boardAuth && (username !== undefined || password !== undefined);
  // Loaded here: fastify and Bull Board cost every other verb nothing.
  const { startApi } = await import('@imagecache/api');
  const api = await startApi(config, {
    port,
    host: flags.bind,
    board: {
      ...(withAuth ? { username, password } : {}),
      readOnly: flags.readOnly ?? false,
      allowNoAuthOnLoopback: !flags.boardAuth,
    },
    waitTimeoutMs: Math.round(waitTimeout * 1000),
    // Logs go to stderr, like every verb's (stdout is for results).
    logger: {
      level: logLevel ?? process.env.IMAGECACHE_LOG_LEVEL ?? config.logLevel ?? 'info',
      stream: process.stderr,
    },
  });
  process.stderr.write(`imagecache api: listening on ${api.url} (board at ${api.url}/board)\n`);
  await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  await api.close();
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
