/**
 * Leaf issuance throughput: the CA certifies a caller-supplied public key (key generation is the
 * caller's and is excluded), one core, for each CA key algorithm.
 *
 *   npm run bench:pki            # default 3 s per algorithm
 *   BENCH_SECONDS=10 npm run bench:pki
 */
import { cpus } from 'node:os';
import { CertificateAuthority } from '../src/pki/certificate-authority.js';
import { generateKey, type KeyAlgorithm } from '../src/pki/keys.js';
import { SpiffeId } from '../src/model/spiffe-id.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const algorithms: KeyAlgorithm[] = ['ec-p256', 'rsa-2048'];
const td = 'bench.acme.internal';

console.log(`# fedgate bench:pki — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}, ${seconds}s per algorithm, single thread`);
console.log('| CA key | leaves issued | seconds | leaves/s |');
console.log('| --- | ---: | ---: | ---: |');
for (const algorithm of algorithms) {
  const ca = CertificateAuthority.create({ trustDomain: td, keyAlgorithm: algorithm });
  // Subject keys come from the caller; a pool of them is reused so their generation is not timed.
  // Keys arrive as DER SubjectPublicKeyInfo, as in a CSR or an API request.
  const keys = Array.from({ length: 64 }, () => generateKey('ec-p256').publicKey.export({ type: 'spki', format: 'der' }));
  const ids = Array.from({ length: 64 }, (_, i) => SpiffeId.workload(td, 'default', `sa-${i}`));
  for (let i = 0; i < 200; i++) ca.issue({ spiffeId: ids[i % 64] as SpiffeId, publicKey: keys[i % 64] as never, ttlMs: 3_600_000 });
  let issued = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(seconds * 1e9);
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 50; i++, issued++) ca.issue({ spiffeId: ids[issued % 64] as SpiffeId, publicKey: keys[issued % 64] as never, ttlMs: 3_600_000 });
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`| ${algorithm} | ${issued} | ${elapsed.toFixed(2)} | ${Math.round(issued / elapsed)} |`);
}
