import { ErrorCodes, PkiError } from '../core/errors.js';
import { TrustBundle, type SpiffeBundleDocument } from './trust-bundle.js';

export type BundleUpdate =
  | { status: 'applied'; trustDomain: string; sequence: number }
  | { status: 'stale'; trustDomain: string; sequence: number; current: number }
  | { status: 'rejected'; trustDomain: string; reason: string };

/**
 * The trust bundles a process knows, one per trust domain, never merged. An update only applies
 * when its sequence is newer than what is held (a replayed or reordered bundle cannot roll trust
 * back), and a bundle that fails to parse leaves the last good one in force.
 *
 * Some trust domains are *anchored*: the process owns their bundle (the controller its federation
 * CA, a gateway its own cluster's CA). An anchored bundle changes only through `anchor()`, never
 * through `update()` or `replaceAll()`, which carry bundles that came from peers or the catalog:
 * otherwise a member that joined with the federation's trust domain, and a newer sequence, would
 * replace the controller's own root and could mint admin identities.
 */
export class TrustStore {
  private readonly bundles = new Map<string, TrustBundle>();
  private readonly anchored = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private cachedRoots: string[] | undefined;
  private versionCounter = 0;

  constructor(initial: Iterable<TrustBundle> = []) {
    for (const bundle of initial) this.bundles.set(bundle.trustDomain, bundle);
  }

  /** Increases on every applied change; secure contexts and session caches key on it. */
  get version(): number {
    return this.versionCounter;
  }

  get(trustDomain: string): TrustBundle | undefined {
    return this.bundles.get(trustDomain);
  }

  trustDomains(): string[] {
    return [...this.bundles.keys()].sort();
  }

  all(): TrustBundle[] {
    return this.trustDomains().map((td) => this.bundles.get(td) as TrustBundle);
  }

  /** True when the bundle of `trustDomain` is owned by this process (see the class comment). */
  isAnchored(trustDomain: string): boolean {
    return this.anchored.has(trustDomain);
  }

  /**
   * Sets the bundle of a trust domain this process owns, and anchors it; a later `anchor()` with a
   * newer sequence (a CA rotation of the owner) replaces it.
   */
  anchor(bundle: TrustBundle): BundleUpdate {
    this.anchored.add(bundle.trustDomain);
    const current = this.bundles.get(bundle.trustDomain);
    if (current && bundle.sequence <= current.sequence) {
      return { status: 'stale', trustDomain: bundle.trustDomain, sequence: bundle.sequence, current: current.sequence };
    }
    this.bundles.set(bundle.trustDomain, bundle);
    this.changed();
    return { status: 'applied', trustDomain: bundle.trustDomain, sequence: bundle.sequence };
  }

  /** Applies a bundle from a peer or the catalog; anchored trust domains refuse it. */
  update(bundle: TrustBundle): BundleUpdate {
    if (this.anchored.has(bundle.trustDomain)) return anchoredRefusal(bundle.trustDomain);
    const current = this.bundles.get(bundle.trustDomain);
    if (current && bundle.sequence <= current.sequence) {
      return { status: 'stale', trustDomain: bundle.trustDomain, sequence: bundle.sequence, current: current.sequence };
    }
    this.bundles.set(bundle.trustDomain, bundle);
    this.changed();
    return { status: 'applied', trustDomain: bundle.trustDomain, sequence: bundle.sequence };
  }

  /** Parses and applies a SPIFFE bundle document; a bad document is rejected and changes nothing. */
  updateFromSpiffeJson(trustDomain: string, document: string | SpiffeBundleDocument): BundleUpdate {
    let bundle: TrustBundle;
    try {
      bundle = TrustBundle.fromSpiffeJson(trustDomain, document);
    } catch (error) {
      return { status: 'rejected', trustDomain, reason: (error as Error).message };
    }
    return this.update(bundle);
  }

  /**
   * Replaces the peer bundles at once (a controller snapshot). Sequence rules still hold per
   * domain; domains absent from the snapshot are removed (a cluster that left); anchored domains
   * are kept as they are and refuse what the snapshot carries for them.
   */
  replaceAll(bundles: readonly TrustBundle[], keep: readonly string[] = []): BundleUpdate[] {
    const results: BundleUpdate[] = [];
    const wanted = new Set([...bundles.map((b) => b.trustDomain), ...keep, ...this.anchored]);
    let changed = false;
    for (const td of [...this.bundles.keys()]) {
      if (!wanted.has(td)) {
        this.bundles.delete(td);
        changed = true;
      }
    }
    for (const bundle of bundles) {
      if (this.anchored.has(bundle.trustDomain)) {
        results.push(anchoredRefusal(bundle.trustDomain));
        continue;
      }
      const current = this.bundles.get(bundle.trustDomain);
      if (current && bundle.sequence <= current.sequence) {
        results.push({ status: 'stale', trustDomain: bundle.trustDomain, sequence: bundle.sequence, current: current.sequence });
        continue;
      }
      this.bundles.set(bundle.trustDomain, bundle);
      changed = true;
      results.push({ status: 'applied', trustDomain: bundle.trustDomain, sequence: bundle.sequence });
    }
    if (changed) this.changed();
    return results;
  }

  remove(trustDomain: string): boolean {
    if (this.anchored.has(trustDomain)) return false;
    const removed = this.bundles.delete(trustDomain);
    if (removed) this.changed();
    return removed;
  }

  /** Every authority of every domain, PEM; what Node's TLS gets as `ca` before the binding check narrows it. */
  roots(): string[] {
    this.cachedRoots ??= this.all().flatMap((bundle) => bundle.authorities.map((c) => c.toString()));
    return this.cachedRoots;
  }

  /** Calls `listener` after every applied change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  require(trustDomain: string): TrustBundle {
    const bundle = this.bundles.get(trustDomain);
    if (!bundle) throw new PkiError(ErrorCodes.PEER_UNTRUSTED, `no trust bundle for trust domain "${trustDomain}"`);
    return bundle;
  }

  private changed(): void {
    this.cachedRoots = undefined;
    this.versionCounter += 1;
    for (const listener of this.listeners) listener();
  }
}

function anchoredRefusal(trustDomain: string): BundleUpdate {
  return { status: 'rejected', trustDomain, reason: `the bundle of trust domain "${trustDomain}" is held by this process and never taken from a peer or the catalog` };
}
