import { ConfigError } from '@imagecache/errors';

/** Runs fn, expects a ConfigError, returns it. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('CONFIG_ERROR');
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, got none');
}

export function issuesOf(err: ConfigError): { path: string; message: string; line?: number; env?: string }[] {
  return err.details.issues as { path: string; message: string; line?: number; env?: string }[];
}

/** The error as everything a user or a log could see. */
export function everything(err: ConfigError): string {
  return `${err.message}\n${JSON.stringify(err.toJSON())}\n${String(err.stack)}`;
}
