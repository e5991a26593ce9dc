/**
 * What a gateway's certificate renewal costs through the cluster signer (`fedgate ca serve`): a new
 * TLS 1.3 connection with the current certificate, key generation, proof of possession, issuance,
 * and the gateway's checks of the answer. Signer and gateway share this process (one core for
 * both), so the figure is the whole round trip's CPU, not a network latency.
 *
 *   npm run build && node dist/bench/signer.js            # 300 renewals
 *   BENCH_RENEWALS=1000 node dist/bench/signer.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../src/core/logger.js';
import { SpiffeId } from '../src/model/spiffe-id.js';
import { PkiDirectory } from '../src/pki/pki-directory.js';
import { SignerClient } from '../src/pki/signer/signer-client.js';
import { SvidSigner } from '../src/pki/signer/svid-signer.js';
import { issueSvid } from '../src/pki/svid.js';

const renewals = Number(process.env.BENCH_RENEWALS ?? 300);
const td = 'bench.acme.internal';
const dir = mkdtempSync(join(tmpdir(), 'fedgate-bench-signer-'));
try {
  const pki = PkiDirectory.init(join(dir, 'ca'), { trustDomain: td });
  const signer = new SvidSigner({ pkiDir: pki.dir, cluster: 'bench', listen: '127.0.0.1:0', maxTtlMs: 3_600_000, auth: { renewal: true }, log: createSilentLogger() });
  await signer.start();
  const id = SpiffeId.gateway(td, 'bench');
  const client = new SignerClient({ address: `127.0.0.1:${signer.port}`, trustDomain: td, caFile: join(pki.dir, 'ca.crt') });
  let current = issueSvid(pki.ca(), id, { ttlMs: 3_600_000 });
  for (let i = 0; i < 20; i++) current = (await client.requestSvid(id, { ttlMs: 3_600_000, current })).svid;
  const times: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < renewals; i++) {
    const t = process.hrtime.bigint();
    current = (await client.requestSvid(id, { ttlMs: 3_600_000, current })).svid;
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await signer.stop();
  times.sort((a, b) => a - b);
  const at = (q: number): string => (times[Math.min(times.length - 1, Math.floor(q * times.length))] as number).toFixed(1);
  console.log(`# fedgate bench:signer — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}, ${renewals} sequential renewals, signer and gateway in one process`);
  console.log('| renewals | seconds | renewals/s | p50 ms | p90 ms | p99 ms |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(`| ${renewals} | ${seconds.toFixed(2)} | ${(renewals / seconds).toFixed(1)} | ${at(0.5)} | ${at(0.9)} | ${at(0.99)} |`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
