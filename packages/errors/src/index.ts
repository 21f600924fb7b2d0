export * from './errors';
export {
  ERROR_CLASSES,
  errorClassFor,
  exitStatusOf,
  httpStatusOf,
  deserializeError,
  toImageCacheError,
  withHref,
} from './registry';
export type { ErrorClass } from './registry';
export { redactHref, redactSecrets, redactText, SECRET_LOG_PATHS } from './redact';
