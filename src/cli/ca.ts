import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { parseDuration } from '../core/duration.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { isKeyAlgorithm, KEY_ALGORITHMS, type KeyAlgorithm } from '../pki/keys.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { issueSvid } from '../pki/svid.js';
import { registerCaServeCommand } from './ca-serve.js';
import { registerCaSignerTokenCommand } from './ca-signer-token.js';
import { UsageError } from './cli-error.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';

function keyAlgorithm(value: string | undefined): KeyAlgorithm | undefined {
  if (value === undefined) return undefined;
  if (!isKeyAlgorithm(value)) throw new UsageError(`--key-algorithm must be one of ${KEY_ALGORITHMS.join(', ')}, got "${value}"`);
  return value;
}

function duration(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
}

export function registerCaCommand(program: Command, io: CliIo): void {
  const ca = program.command('ca').description('per-cluster certificate authorities, leaf SVIDs and trust bundles');

  ca.command('init')
    .description('create a root CA for a trust domain (Kubernetes secret layout: tls.crt, tls.key, ca.crt, plus bundle.json)')
    .requiredOption('--trust-domain <name>', 'trust domain, e.g. us-east.acme.internal')
    .requiredOption('--out <dir>', 'directory to write the CA to')
    .option('--key-algorithm <alg>', `key algorithm: ${KEY_ALGORITHMS.join(', ')}`, 'ec-p256')
    .option('--ttl <duration>', 'CA lifetime', '43800h')
    .option('--no-name-constraints', 'do not restrict the CA to URIs of its trust domain')
    .option('--force', 'replace an existing CA in --out')
    .addOption(outputOption())
    .action((options: { trustDomain: string; out: string; keyAlgorithm: string; ttl: string; nameConstraints: boolean; force?: boolean; output: string }) => {
      const directory = PkiDirectory.init(options.out, {
        trustDomain: options.trustDomain,
        keyAlgorithm: keyAlgorithm(options.keyAlgorithm),
        ttlMs: duration('--ttl', options.ttl),
        nameConstraints: options.nameConstraints,
        force: options.force,
      });
      const created = directory.ca();
      const sequence = directory.bundle().sequence;
      const files = { certificate: join(options.out, 'tls.crt'), key: join(options.out, 'tls.key'), anchors: join(options.out, 'ca.crt'), bundle: join(options.out, 'bundle.json') };
      printResult(io, options.output, { trustDomain: options.trustDomain, ca: created.describe(), bundleSequence: sequence, files }, () => {
        io.out(`created ${created.describe()}`);
        io.out(`  ${files.certificate}   CA certificate`);
        io.out(`  ${files.key}   CA private key (mode 0600; keep it in this cluster)`);
        io.out(`  ${files.anchors}    trust anchors`);
        io.out(`  ${files.bundle} SPIFFE trust bundle, sequence ${sequence}`);
      });
    });

  ca.command('issue')
    .description('issue a leaf X.509-SVID (key generated here) for an operator or a workload')
    .requiredOption('--ca <dir>', 'CA directory')
    .requiredOption('--spiffe-id <id>', 'identity, e.g. spiffe://us-east.acme.internal/ns/default/sa/web')
    .requiredOption('--out <dir>', 'directory for tls.crt, tls.key and ca.crt')
    .option('--ttl <duration>', 'lifetime', '24h')
    .option('--dns <name...>', 'DNS SANs for clients that check host names')
    .option('--key-algorithm <alg>', `key algorithm: ${KEY_ALGORITHMS.join(', ')}`, 'ec-p256')
    .addOption(outputOption())
    .action((options: { ca: string; spiffeId: string; out: string; ttl: string; dns?: string[]; keyAlgorithm: string; output: string }) => {
      const authority = new PkiDirectory(options.ca).ca();
      const svid = issueSvid(authority, SpiffeId.parse(options.spiffeId), {
        ttlMs: duration('--ttl', options.ttl),
        keyAlgorithm: keyAlgorithm(options.keyAlgorithm),
        dnsNames: options.dns,
      });
      mkdirSync(options.out, { recursive: true });
      // Atomic, and 0600 even over an existing key file that had a wider mode.
      writeFileAtomicSync(join(options.out, 'tls.key'), svid.keyPem, { mode: 0o600 });
      writeFileAtomicSync(join(options.out, 'tls.crt'), svid.chainPem, { mode: 0o644 });
      writeFileAtomicSync(join(options.out, 'ca.crt'), authority.anchorsPem.join(''), { mode: 0o644 });
      // The key stays in its file: the document names it, never carries it.
      const issued = { spiffeId: svid.spiffeId.toString(), serial: svid.certificate.serialNumber, notBefore: svid.notBefore.toISOString(), notAfter: svid.notAfter.toISOString(), dir: options.out };
      printResult(io, options.output, issued, () => {
        io.out(`issued ${issued.spiffeId} serial ${issued.serial}, valid ${issued.notBefore} .. ${issued.notAfter}`);
        io.out(`  written to ${options.out}/{tls.crt,tls.key,ca.crt}`);
      });
    });

  ca.command('bundle')
    .description("print the trust domain's bundle (SPIFFE JSON or PEM)")
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--format <format>', 'spiffe or pem', 'spiffe')
    .action((options: { ca: string; format: string }) => {
      const bundle = new PkiDirectory(options.ca).bundle();
      if (options.format === 'pem') io.out(bundle.toPem().trimEnd());
      else if (options.format === 'spiffe') io.out(JSON.stringify(bundle.toSpiffeJson(), null, 2));
      else throw new UsageError(`--format must be spiffe or pem, got "${options.format}"`);
    });

  ca.command('show')
    .description('describe the CA and any rotation in progress')
    .requiredOption('--ca <dir>', 'CA directory')
    .addOption(outputOption())
    .action((options: { ca: string; output: string }) => {
      const directory = new PkiDirectory(options.ca);
      const described = directory.ca().describe();
      const status = directory.status();
      printResult(io, options.output, { ca: described, ...status }, () => {
        io.out(described);
        io.out(`bundle sequence ${status.bundleSequence}`);
        if (status.next) io.out(`prepared next CA: serial ${status.next} (run "fedgate ca rotate activate" once every peer has the bundle)`);
        for (const retired of status.retired) io.out(`retired CA ${retired.serial}: leaves valid until ${retired.retireAfter}${retired.due ? ' — ready to retire' : ''}`);
      });
    });

  const rotate = ca.command('rotate').description('rotate a CA: prepare, then activate, then retire');
  rotate
    .command('prepare')
    .description('create the next CA and add it to the bundle (it signs nothing yet)')
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--key-algorithm <alg>', 'key algorithm of the new CA', 'ec-p256')
    .addOption(outputOption())
    .action((options: { ca: string; keyAlgorithm: string; output: string }) => {
      const bundle = new PkiDirectory(options.ca).prepare({ keyAlgorithm: keyAlgorithm(options.keyAlgorithm) });
      printResult(io, options.output, { prepared: true, bundleSequence: bundle.sequence, authorities: bundle.authorities.length }, () =>
        io.out(`prepared; bundle sequence ${bundle.sequence} now holds ${bundle.authorities.length} authorities. Publish it, then run "fedgate ca rotate activate".`),
      );
    });
  rotate
    .command('activate')
    .description('make the prepared CA the signing CA; the old one stays trusted until its leaves expire')
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--max-leaf-ttl <duration>', 'longest lifetime of any leaf the old CA issued', '24h')
    .addOption(outputOption())
    .action((options: { ca: string; maxLeafTtl: string; output: string }) => {
      const { retireAfter } = new PkiDirectory(options.ca).activate(duration('--max-leaf-ttl', options.maxLeafTtl));
      printResult(io, options.output, { activated: true, retireAfter: retireAfter.toISOString() }, () =>
        io.out(`activated; the old CA can be retired after ${retireAfter.toISOString()} ("fedgate ca rotate retire").`),
      );
    });
  rotate
    .command('retire')
    .description('remove retired CAs whose leaves have all expired from the bundle')
    .requiredOption('--ca <dir>', 'CA directory')
    .option('--force', 'retire even if leaves may still be valid (breaks them)')
    .addOption(outputOption())
    .action((options: { ca: string; force?: boolean; output: string }) => {
      const { removed, bundle } = new PkiDirectory(options.ca).retire({ force: options.force });
      printResult(io, options.output, { removed, bundleSequence: bundle.sequence }, () =>
        io.out(removed.length === 0 ? 'nothing to retire' : `retired ${removed.join(', ')}; bundle sequence ${bundle.sequence}`),
      );
    });

  registerCaServeCommand(ca, io);
  registerCaSignerTokenCommand(ca, io);
}
