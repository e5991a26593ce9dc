import type { Command } from 'commander';
import { loadClusterFile } from '../config/load.js';
import { createRootLogger } from '../core/logger.js';
import type { DiscoveryState } from '../discovery/provider.js';
import { UsageError } from './cli-error.js';
import { discoveryFor } from './gateway.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';

function rows(state: DiscoveryState): string[] {
  const exports = [...state.exports.values()].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  if (exports.length === 0) return [`no exports (${state.source})`];
  const lines = [`${exports.length} exports (${state.source})`];
  for (const e of exports) {
    const ready = e.endpoints.filter((p) => p.ready).length;
    const ports = e.ports.map((p) => `${p.name}:${p.port}→${p.targetPort}/${p.protocol}`).join(',');
    lines.push(`  ${e.name}.${e.namespace}.svc.clusterset.local  ${ports}  endpoints ${ready}/${e.endpoints.length} ready  consumers ${e.consumers.length > 0 ? e.consumers.join(',') : 'all clusters'}`);
  }
  return lines;
}

/**
 * What this cluster exports, read the way its gateway reads it (the cluster file's exports, or the
 * Kubernetes API), without running a gateway: a check before and after editing exports.
 */
export function registerExportCommand(program: Command, io: CliIo): void {
  const exportCommand = program.command('export').description("this cluster's exports, as its gateway's discovery sees them");
  exportCommand
    .command('list')
    .description('list the exports of a cluster (file mode: its cluster file; kubernetes mode: ServiceExports in the API server)')
    .requiredOption('--config <file>', 'the cluster file')
    .addOption(outputOption())
    .option('--timeout <seconds>', 'kubernetes mode: how long to wait for the first complete list', '20')
    .action(async (options: { config: string; output: string; timeout: string }) => {
      const cluster = loadClusterFile(options.config);
      const log = createRootLogger({ name: 'fedgate-export', level: 'warn' });
      const discovery = await discoveryFor(cluster, log);
      const abort = new AbortController();
      let state = discovery.current();
      if (cluster.spec.discovery.mode === 'kubernetes') {
        const synced = (discovery as unknown as { whenSynced?: () => Promise<void> }).whenSynced?.();
        const running = discovery.start(abort.signal).catch(() => undefined);
        const timeoutMs = Number(options.timeout) * 1000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        });
        const result = await Promise.race([synced ?? Promise.resolve(), timedOut]);
        clearTimeout(timer);
        abort.abort();
        await running;
        if (result === 'timeout') throw new UsageError(`the Kubernetes API did not list ServiceExports, Services and EndpointSlices within ${options.timeout}s`);
        state = discovery.current();
      }
      printResult(io, options.output, { source: state.source, exports: [...state.exports.values()] }, () => {
        for (const line of rows(state)) io.out(line);
      });
    });
}
