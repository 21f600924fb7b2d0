import { ImageCacheError, toImageCacheError } from '@imagecache/errors';
import { exitCodeFor } from './exit-codes';

/** How a command reports: one JSON object on stdout with --json, human lines otherwise. */
export interface Output {
  json: boolean;
  /** Prints the command's result (`human` renders it for people). */
  result(value: unknown, human: () => string): void;
  /** Reports an error and returns the exit status for it. */
  error(err: unknown): number;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? JSON.stringify(value) + '\n' : human() + '\n');
    },
    error(err) {
      const e = err instanceof ImageCacheError ? err : toImageCacheError(err);
      if (json) {
        const { code, message, details } = e.toJSON();
        process.stdout.write(JSON.stringify({ error: { code, message, details } }) + '\n');
      } else {
        process.stderr.write(`imagecache: ${e.code}: ${e.message}\n`);
      }
      return exitCodeFor(err);
    },
  };
}
