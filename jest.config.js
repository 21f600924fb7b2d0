// One jest run for the whole workspace: workspace packages resolve to their sources,
// so tests never depend on a stale dist/.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/apps'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  // ESM-only dependencies (content-disposition of @fastify/static, cookie of fastify's inject) are compiled to CommonJS for jest; Node
  // itself (>= 20.19) requires them as they are.
  transformIgnorePatterns: ['/node_modules/(?!(\\.pnpm/)?(content-disposition|cookie)[@/])'],
  moduleNameMapper: {
    '^@imagecache/(cli|worker|api)$': '<rootDir>/apps/$1/src/index.ts',
    '^@imagecache/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts',
  },
  testTimeout: 30000,
};
