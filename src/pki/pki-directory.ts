import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { systemClock, type Clock } from '../core/clock.js';
import { formatDuration } from '../core/duration.js';
import { ErrorCodes, PkiError } from '../core/errors.js';
import { CertificateAuthority, type CreateCaOptions } from './certificate-authority.js';
import { parseCertificates } from './pem.js';
import { TrustBundle } from './trust-bundle.js';

const BUNDLE_FILE = 'bundle.json';
const RETIRE_AFTER_FILE = 'retire-after';

export interface RotationStatus {
  active: string;
  next?: string;
  retired: Array<{ serial: string; retireAfter: string; due: boolean }>;
  bundleSequence: number;
}

/**
 * A trust domain's CA material on disk, with CA rotation in three explicit steps:
 *
 * 1. `prepare`: a new CA is created in `next/` and added to the bundle; it signs nothing yet, so
 *    every peer learns to trust it before the first leaf it signs exists.
 * 2. `activate`: the new CA becomes the signing CA; the old one moves to `retired/<serial>/` with
 *    the time its last leaf expires, and stays in the bundle.
 * 3. `retire`: once that time has passed, the old CA leaves the bundle.
 *
 * Each bundle change gets a higher `spiffe_sequence` (never lower than the current Unix time in
 * seconds, so a bundle derived later from the files alone still sorts after it).
 */
export class PkiDirectory {
  constructor(
    readonly dir: string,
    private readonly options: { trustDomain?: string; clock?: Clock } = {},
  ) {}

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  static init(dir: string, options: CreateCaOptions & { force?: boolean }): PkiDirectory {
    if (existsSync(join(dir, 'tls.key')) && !options.force) {
      throw new PkiError(ErrorCodes.CA_INVALID, `${dir} already holds a CA (tls.key exists); use --force to replace it, or "fedgate ca rotate" to rotate it`);
    }
    const ca = CertificateAuthority.create(options);
    ca.save(dir);
    const directory = new PkiDirectory(dir, { trustDomain: options.trustDomain, clock: options.clock });
    directory.writeBundle(directory.composeBundle(0));
    return directory;
  }

  exists(): boolean {
    return existsSync(join(this.dir, 'tls.key'));
  }

  ca(): CertificateAuthority {
    return CertificateAuthority.load(this.dir, { trustDomain: this.options.trustDomain, clock: this.options.clock });
  }

  /** The published bundle; derived from the files when bundle.json is absent (e.g. a cert-manager secret). */
  bundle(): TrustBundle {
    const file = join(this.dir, BUNDLE_FILE);
    const trustDomain = this.ca().trustDomain;
    if (existsSync(file)) return TrustBundle.fromSpiffeJson(trustDomain, readFileSync(file, 'utf8'));
    return this.composeBundle(0, trustDomain, true);
  }

  prepare(options: Omit<CreateCaOptions, 'trustDomain' | 'clock'> = {}): TrustBundle {
    if (existsSync(join(this.nextDir, 'tls.key'))) {
      throw new PkiError(ErrorCodes.CA_ROTATION, `a rotation is already prepared in ${this.nextDir}; run "fedgate ca rotate activate" next`);
    }
    const active = this.ca();
    const next = CertificateAuthority.create({ ...options, trustDomain: active.trustDomain, clock: this.options.clock });
    next.save(this.nextDir);
    const bundle = this.composeBundle(this.bundle().sequence);
    this.writeBundle(bundle);
    return bundle;
  }

  /**
   * Makes the prepared CA the signing CA. `maxLeafTtlMs` is the longest lifetime of any leaf the
   * old CA issued: the old CA must stay trusted until the last of them has expired.
   */
  activate(maxLeafTtlMs: number): { retireAfter: Date } {
    if (!existsSync(join(this.nextDir, 'tls.key'))) {
      throw new PkiError(ErrorCodes.CA_ROTATION, `no prepared CA in ${this.nextDir}; run "fedgate ca rotate prepare" first and wait until every peer has the new bundle`);
    }
    const old = this.ca();
    const retireAfter = new Date(Math.min(this.clock.now() + maxLeafTtlMs, old.notAfter.getTime()));
    const retiredDir = join(this.dir, 'retired', old.serialNumber);
    mkdirSync(retiredDir, { recursive: true });
    writeFileAtomicSync(join(retiredDir, 'ca.crt'), old.anchorsPem.join(''), { mode: 0o644 });
    writeFileAtomicSync(join(retiredDir, 'tls.crt'), old.certificatePem, { mode: 0o644 });
    writeFileAtomicSync(join(retiredDir, RETIRE_AFTER_FILE), retireAfter.toISOString(), { mode: 0o644 });
    for (const file of ['tls.crt', 'tls.key', 'ca.crt']) renameSync(join(this.nextDir, file), join(this.dir, file));
    rmSync(this.nextDir, { recursive: true, force: true });
    return { retireAfter };
  }

  /** Removes retired CAs whose leaves have all expired from the bundle; refuses early removal unless forced. */
  retire(options: { force?: boolean } = {}): { removed: string[]; bundle: TrustBundle } {
    const removed: string[] = [];
    const now = this.clock.now();
    for (const entry of this.retiredEntries()) {
      if (entry.retireAfter.getTime() > now && !options.force) {
        throw new PkiError(
          ErrorCodes.CA_ROTATION,
          `retired CA ${entry.serial} may still have valid leaves until ${entry.retireAfter.toISOString()} (${formatDuration(entry.retireAfter.getTime() - now)} from now); retiring it earlier would break them`,
        );
      }
      rmSync(entry.dir, { recursive: true, force: true });
      removed.push(entry.serial);
    }
    const bundle = this.composeBundle(this.bundle().sequence);
    this.writeBundle(bundle);
    return { removed, bundle };
  }

  status(): RotationStatus {
    const now = this.clock.now();
    return {
      active: this.ca().serialNumber,
      next: existsSync(join(this.nextDir, 'tls.crt')) ? new X509Certificate(readFileSync(join(this.nextDir, 'tls.crt'))).serialNumber : undefined,
      retired: this.retiredEntries().map((e) => ({ serial: e.serial, retireAfter: e.retireAfter.toISOString(), due: e.retireAfter.getTime() <= now })),
      bundleSequence: this.bundle().sequence,
    };
  }

  private get nextDir(): string {
    return join(this.dir, 'next');
  }

  private retiredEntries(): Array<{ serial: string; dir: string; retireAfter: Date; anchors: X509Certificate[] }> {
    const root = join(this.dir, 'retired');
    if (!existsSync(root)) return [];
    return readdirSync(root)
      .sort()
      .map((serial) => {
        const dir = join(root, serial);
        return {
          serial,
          dir,
          retireAfter: new Date(readFileSync(join(dir, RETIRE_AFTER_FILE), 'utf8').trim()),
          anchors: parseCertificates(readFileSync(join(dir, 'ca.crt'), 'utf8'), join(dir, 'ca.crt')),
        };
      });
  }

  /** Active, prepared and retired anchors together, with a sequence above `previous`. */
  private composeBundle(previous: number, trustDomain?: string, derived = false): TrustBundle {
    const active = this.ca();
    const anchors = [...parseCertificates(active.anchorsPem.join(''), join(this.dir, 'ca.crt'))];
    if (existsSync(join(this.nextDir, 'ca.crt'))) anchors.push(...parseCertificates(readFileSync(join(this.nextDir, 'ca.crt'), 'utf8'), join(this.nextDir, 'ca.crt')));
    for (const entry of this.retiredEntries()) anchors.push(...entry.anchors);
    // Without bundle.json, the newest anchor's start time stands in for the sequence: it grows when
    // an external issuer rotates the CA, which is the change peers need to notice.
    const sequence = derived
      ? Math.max(...anchors.map((a) => Math.floor(Date.parse(a.validFrom) / 1000)))
      : Math.max(previous + 1, Math.floor(this.clock.now() / 1000));
    return new TrustBundle(trustDomain ?? active.trustDomain, anchors, sequence);
  }

  private writeBundle(bundle: TrustBundle): void {
    writeFileAtomicSync(join(this.dir, BUNDLE_FILE), `${JSON.stringify(bundle.toSpiffeJson(), null, 2)}\n`, { mode: 0o644 });
  }
}
