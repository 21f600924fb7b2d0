export * from './errors';
export { ERROR_CLASSES, errorClassFor, deserializeError, toImageCacheError } from './registry';
export { redactHref, redactSecrets } from './redact';
