export { run } from './program';
export { EXIT_CODES, exitCodeFor } from './exit-codes';
