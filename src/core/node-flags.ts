/**
 * V8 flags every long-running fedgate process (gateway, controller) is started with, by the
 * container image's entry point, `fedgate demo`, drills that restart a gateway, and the tests.
 *
 * A gateway allocates a few kilobytes of short-lived objects per request (headers, streams,
 * promises). With V8's default 16 MiB semi-spaces it runs a scavenge every few thousand requests;
 * 32 MiB halves that, and scavenge time depends on what survives, not on the space's size. On the
 * 2-core benchmark machine this took the two gateways of one request from about 110 + 130 µs to
 * 90 + 120 µs of CPU at saturation (docs/benchmarks.md). The flag must be given at process start:
 * v8.setFlagsFromString() after the heap exists has no effect on it.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
