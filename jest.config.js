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
  // lab-controller-partition asserts what the data plane must do when the controller is cut off
  // from a healthy cluster (ARCHITECTURE.md §9: reachability is judged by the data path); today
  // the gateways withdraw the cluster on lease expiry, so it fails and stays out of the default
  // run until that fix lands. Run it with:
  //   NODE_OPTIONS=--experimental-vm-modules npx jest test/e2e/lab-controller-partition.test.ts --testPathIgnorePatterns /node_modules/
  // and, once it passes, delete this entry to make it part of `npm test`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/e2e/lab-controller-partition.test.ts'],
  testTimeout: 30000,
  maxWorkers: 2,
};
