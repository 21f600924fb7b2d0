import { ERROR_CLASSES, exitStatusOf } from '@imagecache/errors';

/**
 * The CLI's exit status per error code: public and stable (README "Exit status"). Each error class owns its
 * status (`exitStatus`, in @imagecache/errors); this is the table read from them.
 * 0 is success; 1 is an error that is none of these (a bug, or an unexpected system error).
 */
export const EXIT_CODES: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(ERROR_CLASSES.map((c) => [c.code, c.exitStatus])),
);

export function exitCodeFor(err: unknown): number {
  return exitStatusOf(err);
}
