import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials, type AdminConnection } from '../../src/cli/controller-api.js';
import { LabFederation, type LabCluster, type LabFederationOptions } from '../../src/demo/lab-federation.js';
import { LabNetwork } from '../../src/demo/lab-network.js';
import { PARTITION_TABLE } from '../../src/drill/partition.js';

export const FEDGATE_BIN = join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js');

/** Why lab tests cannot run on this machine (not root, no iproute2 or nft), or undefined. */
export function labSkipReason(): string | undefined {
  const network = LabNetwork.unavailable();
  if (network) return network;
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nft is missing (install nftables: tools/setup.sh does)';
  }
  return undefined;
}

/**
 * `describe` for lab tests: they need root (network namespaces, nft). Elsewhere the suite is
 * skipped and says why, once, on the console — CI runs as root, so there they always run.
 */
export function describeLab(name: string, body: () => void): void {
  const reason = labSkipReason();
  if (reason) {
    console.warn(`skipping "${name}": ${reason}`);
    describe.skip(name, body);
  } else {
    describe(name, body);
  }
}

/** A lab federation for one test file: every process real, each cluster on its own namespace. */
export class TestLab {
  private adminConnection: AdminConnection | undefined;

  private constructor(
    readonly federation: LabFederation,
    readonly dir: string,
  ) {}

  static async start(clusters: readonly LabCluster[], options: Omit<LabFederationOptions, 'bin' | 'dir'> = {}): Promise<TestLab> {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-lab-test-'));
    const federation = await LabFederation.create(clusters, { bin: FEDGATE_BIN, dir, env: { FEDGATE_LOG_LEVEL: process.env.FEDGATE_TEST_LOG_LEVEL ?? 'info' }, ...options });
    const lab = new TestLab(federation, dir);
    try {
      await federation.startAll();
    } catch (error) {
      await lab.stop();
      throw error;
    }
    return lab;
  }

  admin(): AdminConnection {
    this.adminConnection ??= connectAdmin(this.federation.controller.api, readAdminCredentials(this.federation.credentialsDir));
    return this.adminConnection;
  }

  /** The last lines of every process's log, for a failure message. */
  logs(lines = 15): string {
    return [...this.federation.processes.values()].map((p) => `--- ${p.name} (${p.logFile})\n${p.tail(lines)}`).join('\n');
  }

  /**
   * Drops packets between a lab host and some addresses, inside the host's namespace (never on
   * this machine's interfaces): a partition of that host from those peers only. Returns the undo.
   */
  cut(host: string, peers: readonly string[], direction: 'in' | 'out' | 'both' = 'both'): () => void {
    const netns = this.federation.network.host(host).netns;
    const set = `{ ${peers.join(', ')} }`;
    const chains = [
      ...(direction !== 'out' ? ['chain input { type filter hook input priority -300; policy accept;', `ip saddr ${set} drop`, '}'] : []),
      ...(direction !== 'in' ? ['chain output { type filter hook output priority -300; policy accept;', `ip daddr ${set} drop`, '}'] : []),
    ];
    const table = `${PARTITION_TABLE}_test`;
    execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: `table inet ${table} {\n${chains.join('\n')}\n}\n` });
    return () => execFileSync('ip', ['netns', 'exec', netns, 'nft', 'delete', 'table', 'inet', table]);
  }

  async stop(): Promise<void> {
    this.adminConnection?.close();
    await this.federation.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
