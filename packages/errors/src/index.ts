export * from './errors';
export { ERROR_CLASSES, errorClassFor, deserializeError, toImageCacheError, withHref } from './registry';
export { redactHref, redactSecrets, redactText } from './redact';
