/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    // Type checking is `tsc --noEmit` in `npm test`; here files are only transpiled, which keeps the
    // suite fast (isolatedModules is set in tsconfig.json).
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  // Two lab suites assert what the data plane must do under a partition; they stay out of the
  // default run until they hold reliably:
  // - lab-controller-partition: the controller cut off from a healthy cluster for 3 × leaseTtl
  //   moves no traffic away from it and fails no request (ARCHITECTURE.md §9). On 2026-12-07 it
  //   passed once on a quiet machine and failed once under heavy CPU contention (gateways' own
  //   connects timing out); confirm it on CI, then enable it;
  // - lab-partition-objectives: no idempotent request or unary gRPC call lost when a cluster's
  //   packets are dropped (per-try timeouts, retries on another cluster): fails today for gRPC
  //   and for some directions.
  // Run one with, e.g.:
  //   NODE_OPTIONS=--experimental-vm-modules npx jest test/e2e/lab-controller-partition.test.ts --testPathIgnorePatterns /node_modules/
  // and, once it passes, delete its entry to make it part of `npm test`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/e2e/lab-controller-partition.test.ts', '<rootDir>/test/e2e/lab-partition-objectives.test.ts'],
  testTimeout: 30000,
  maxWorkers: 2,
};
