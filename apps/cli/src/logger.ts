import pino from 'pino';
import { UsageError } from '@imagecache/errors';
import type { Logger } from '@imagecache/core';

/** Logs go to stderr (stdout is for results); secrets are redacted wherever they might sit. */
export function createLogger(level: string): Logger {
  if (!Object.hasOwn(pino.levels.values, level) && level !== 'silent') {
    throw new UsageError(
      `unknown log level ${JSON.stringify(level)} (fatal, error, warn, info, debug, trace, silent)`,
    );
  }
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['auth', '*.auth', 'password', '*.password', 'token', '*.token', 'headers.authorization'],
        censor: '***',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
