import type pino from 'pino';
import { LOG_LEVELS } from '@imagecache/config';
import { SECRET_LOG_PATHS, UsageError } from '@imagecache/errors';
import type { Logger } from '@imagecache/core';

const METHODS = ['debug', 'info', 'warn', 'error'] as const;
/** pino's level numbers: a line below the level is dropped here, without loading pino for it. */
const SEVERITY: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

/**
 * Logs go to stderr (stdout is for results); secrets are redacted wherever they might sit. pino is loaded by the
 * first line logged at or above the level: a verb that logs nothing (a hit, or a miss whose only line is an info
 * one, at the default level) doesn't pay for it.
 */
export function createLogger(level: string): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`unknown log level ${JSON.stringify(level)} (${LOG_LEVELS.join(', ')})`);
  }
  let real: Logger | undefined;
  const logger = {} as Logger;
  for (const m of METHODS) {
    if (SEVERITY[m]! < SEVERITY[level]!) {
      logger[m] = () => undefined;
      continue;
    }
    logger[m] = (obj, msg) => {
      real ??= pinoLogger(level);
      if (msg === undefined) real[m](obj);
      else real[m](obj, msg);
    };
  }
  return logger;
}

function pinoLogger(level: string): pino.Logger {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const create = require('pino') as typeof pino;
  return create(
    {
      level,
      base: undefined,
      redact: {
        paths: [...SECRET_LOG_PATHS, 'headers.authorization'],
        censor: '***',
      },
    },
    create.destination({ fd: 2, sync: true }),
  );
}
