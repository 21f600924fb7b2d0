export { run } from './program';
export { EXIT_CODES, exitCodeFor } from './exit-codes';
export { openHost, sourceOptionsFor } from './host';
export type { Host } from './host';
