import pino from 'pino';
import type { Logger } from '@imagecache/core';

/** Logs go to stderr (stdout is for results); secrets are redacted wherever they might sit. */
export function createLogger(level: string): Logger {
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
