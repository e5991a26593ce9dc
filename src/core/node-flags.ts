/**
 * V8 flags every long-running fedgate process (gateway, controller) is started with, by the
 * container image's entry point, `fedgate demo`, drills that restart a gateway, and the tests.
 * Both must be given at process start: v8.setFlagsFromString() after the heap exists has no effect.
 *
 * `--max-semi-space-size=32`: a gateway allocates a few kilobytes of short-lived objects per
 * request (headers, streams, promises). With V8's default 16 MiB semi-spaces it runs a scavenge
 * every few thousand requests; 32 MiB halves that, and scavenge time depends on what survives, not
 * on the space's size (16 and 64 were both slower on the benchmark machine).
 *
 * `--single-threaded-gc`: V8's parallel scavenger and concurrent marker run on helper threads that
 * compete for the same CPUs as the event loop, the other gateway and the backends. On the 2-core
 * benchmark machine, with them each scavenge took 8–10 ms, promoted about 4 MB of request garbage
 * to the old generation and brought a full mark-compact every 2 s; without them a scavenge takes
 * 1–2 ms, promotes next to nothing and no mark-compact runs under load. With the bench's two
 * gateways alone, CPU per HTTP request fell from 90 + 80 µs to 60–70 + 60–70 µs (outbound +
 * inbound); in full bench runs the throughput gain was within the day's noise (docs/perf-notes/dataplane.md). A gateway is given one or two cores in practice; on a large dedicated
 * machine, parallel GC may shorten pauses at the cost of CPU (README, Operations).
 *
 * `--no-allocation-site-pretenuring`: when objects from one allocation site survive a few
 * scavenges (a pause, a burst, start-up with a large young generation), V8 starts allocating that
 * site's objects directly in the old generation. A gateway's objects live for one request, so the
 * pretenured ones die in the old generation while still pointing at young objects, which then
 * survive every scavenge: with `--min-semi-space-size=32` the gateways ran 24 ms scavenges from
 * the first request and 55 µs per gRPC request per hop, and with this flag 2 ms and 25–30 µs
 * (docs/perf-notes/dataplane.md, 2026-12-07). Nothing a gateway allocates gains from being pretenured.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--single-threaded-gc', '--no-allocation-site-pretenuring'];
