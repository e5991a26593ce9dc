import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { errorMessage, ErrorCodes, FedgateError } from '../core/errors.js';
import type { DrillInjector } from './drill-runner.js';
import { PreflightFailure, type PreflightCheck } from './preflight.js';
import type { PartitionDirection } from './report.js';

/** The nft table a partition drill adds in the failing cluster's namespace, and removes again. */
export const PARTITION_TABLE = 'drill_partition';

function run(command: string, args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error && code === -1 ? errorMessage(error) : '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

const inNetns = (netns: string, args: readonly string[]): [string, string[]] => ['ip', ['netns', 'exec', netns, ...args]];

/**
 * The ruleset: every packet into (`in`), out of (`out`) or both ways through the namespace's
 * interfaces other than loopback is dropped — no reject, no reset, as when a region's network
 * vanishes. The cluster's gateway keeps reaching its own backends over loopback. Packets of
 * connections that were open are dropped too: nothing tells either side that the path is gone.
 */
export function partitionRules(direction: PartitionDirection): string {
  const chains: string[] = [];
  if (direction === 'in' || direction === 'both') chains.push('  chain input {', '    type filter hook input priority -300; policy accept;', '    iifname != "lo" drop', '  }');
  if (direction === 'out' || direction === 'both') chains.push('  chain output {', '    type filter hook output priority -300; policy accept;', '    oifname != "lo" drop', '  }');
  return [`table inet ${PARTITION_TABLE} {`, ...chains, '}', ''].join('\n');
}

export interface PartitionTarget {
  /** The failing cluster. */
  cluster: string;
  /** Its network namespace (a lab host: `ip netns list`). */
  netns: string;
  direction: PartitionDirection;
}

/**
 * Cuts the failing cluster off by packet-dropping rules inside its network namespace, never on
 * this host's own interfaces; the restore deletes the table again. Needs root and nft.
 */
export function partitionInjector(target: PartitionTarget): DrillInjector & { rules: string } {
  const rules = partitionRules(target.direction);
  const words = target.direction === 'both' ? 'into and out of' : target.direction === 'in' ? 'into' : 'out of';
  return {
    description: `drop every packet ${words} ${target.cluster}'s network namespace ${target.netns} (nft, no resets)`,
    rules,
    inject: async () => {
      // `add` then `delete` makes the load idempotent: a half-applied earlier table is replaced whole.
      const script = `add table inet ${PARTITION_TABLE}\ndelete table inet ${PARTITION_TABLE}\n${rules}`;
      const [command, args] = inNetns(target.netns, ['nft', '-f', '-']);
      const result = await run(command, args, script);
      if (result.code !== 0) throw new FedgateError(ErrorCodes.DRILL_FAILED, `nft in ${target.netns} refused the partition rules: ${result.stderr.trim() || `exit ${result.code}`}`);
    },
    restore: async () => {
      const [command, args] = inNetns(target.netns, ['nft', 'delete', 'table', 'inet', PARTITION_TABLE]);
      const result = await run(command, args);
      if (result.code !== 0 && !/No such file or directory/.test(result.stderr)) throw new FedgateError(ErrorCodes.DRILL_FAILED, `nft in ${target.netns} could not remove the partition rules: ${result.stderr.trim() || `exit ${result.code}`} (remove them by hand: ip netns exec ${target.netns} nft delete table inet ${PARTITION_TABLE})`);
    },
  };
}

interface IpAddressInfo {
  addr_info?: Array<{ local?: string }>;
}

/**
 * What must hold before a partition drill touches anything: root, nft, the namespace, no rules
 * left by an earlier drill, the failing cluster's advertised gateway address inside that
 * namespace (otherwise the rules cut off something else), and this process outside it (otherwise
 * the drill cuts itself off).
 */
export function partitionPreflight(target: PartitionTarget, gatewayAddresses: () => readonly string[]): PreflightCheck[] {
  return [
    {
      check: 'partition tools',
      run: async () => {
        if (process.getuid?.() !== 0) throw new PreflightFailure('partition drills need root: they put nft rules into a network namespace');
        const nft = await run('nft', ['--version']);
        if (nft.code !== 0) throw new PreflightFailure(`nft is not available (${nft.stderr.trim() || `exit ${nft.code}`}): install the nftables package (tools/setup.sh does)`);
        return `root, ${nft.stdout.trim()}`;
      },
    },
    {
      check: `netns ${target.netns}`,
      run: async () => {
        const list = await run('ip', ['netns', 'list']);
        if (list.code !== 0) throw new PreflightFailure(`ip netns list failed: ${list.stderr.trim()} (is iproute2 installed?)`);
        const names = list.stdout.split('\n').map((line) => line.trim().split(/\s+/)[0]).filter((name): name is string => Boolean(name));
        if (!names.includes(target.netns)) throw new PreflightFailure(`no network namespace ${target.netns} (ip netns list: ${names.length > 0 ? names.join(', ') : 'none'})`);
        if (statSync('/proc/self/ns/net').ino === statSync(`/run/netns/${target.netns}`).ino) {
          throw new PreflightFailure(`this drill runs inside ${target.netns}, the namespace it would cut off: run it from the --from cluster's namespace (ip netns exec …)`);
        }
        const leftover = await run(...inNetns(target.netns, ['nft', 'list', 'table', 'inet', PARTITION_TABLE]));
        if (leftover.code === 0) throw new PreflightFailure(`${target.netns} still holds the rules of a drill that did not finish (table inet ${PARTITION_TABLE}); remove them: ip netns exec ${target.netns} nft delete table inet ${PARTITION_TABLE}`);
        const addresses = await run('ip', ['-n', target.netns, '-j', 'address', 'show']);
        const local = (JSON.parse(addresses.stdout || '[]') as IpAddressInfo[]).flatMap((i) => (i.addr_info ?? []).map((a) => a.local)).filter((a): a is string => a !== undefined);
        const advertised = gatewayAddresses();
        const hosts = advertised.map((a) => a.slice(0, a.lastIndexOf(':')).replace(/^\[|\]$/g, ''));
        const inside = hosts.filter((h) => local.includes(h));
        if (inside.length === 0) {
          throw new PreflightFailure(`${target.cluster}'s gateway advertises ${advertised.join(', ') || 'no address'}, which is not an address of ${target.netns} (${local.join(', ')}): the rules would not cut ${target.cluster} off`);
        }
        return `${target.cluster}'s gateway ${inside.join(', ')} lives in it; no leftover rules`;
      },
    },
  ];
}
