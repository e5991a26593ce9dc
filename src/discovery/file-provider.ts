import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ConfigError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ClusterConfig, ExportConfig } from '../config/cluster-config.js';
import { loadClusterFile } from '../config/load.js';
import { exportKeyOf, type DiscoveryProvider, type DiscoveryState, type LocalExport } from './provider.js';

export function exportsFromConfig(exports: readonly ExportConfig[]): Map<string, LocalExport> {
  const out = new Map<string, LocalExport>();
  for (const e of exports) {
    const local: LocalExport = {
      namespace: e.namespace,
      name: e.service,
      ports: e.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol })),
      endpoints: e.endpoints.map((ep) => ({ address: ep.address, ready: ep.ready })),
      consumers: [...e.consumers],
      createdAt: 0,
    };
    out.set(exportKeyOf(local), local);
  }
  return out;
}

/**
 * Exports declared in the cluster's YAML file (`spec.exports`). The file is watched; an edit that
 * does not validate is reported with file:line: path and the last good exports stay in force.
 */
export class FileDiscoveryProvider implements DiscoveryProvider {
  readonly name = 'file';
  private state: DiscoveryState;
  private readonly listeners = new Set<(state: DiscoveryState) => void>();
  private lastMtime = 0;
  /** The last reload error, shown in /config until a good edit replaces it. */
  lastError: string | undefined;

  constructor(
    private readonly cluster: ClusterConfig,
    private readonly log: Logger,
    private readonly options: { pollIntervalMs?: number; env?: NodeJS.ProcessEnv } = {},
  ) {
    this.state = { exports: exportsFromConfig(cluster.spec.exports), source: cluster.file };
  }

  current(): DiscoveryState {
    return this.state;
  }

  onChange(listener: (state: DiscoveryState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(signal: AbortSignal): Promise<void> {
    const file = this.cluster.file;
    this.lastMtime = (await stat(file).catch(() => undefined))?.mtimeMs ?? 0;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (): void => {
      if (timer) clearTimeout(timer);
      // Editors write in several steps (truncate, write, rename): wait for the file to settle.
      timer = setTimeout(() => {
        timer = undefined;
        void this.reload();
      }, 100);
    };
    let watcher: FSWatcher | undefined;
    try {
      // Watch the directory: editors that replace the file would orphan a watch on the file itself.
      watcher = watch(dirname(file), (_event, name) => {
        if (name === null || name === basename(file)) schedule();
      });
    } catch (error) {
      this.log.warn({ file, err: errorMessage(error) }, 'cannot watch the cluster file; polling it');
    }
    // Polling as well: fs.watch misses changes on some file systems (network mounts, ConfigMaps).
    // A poll only starts a reload that is not already pending: re-arming the settle timer on
    // every poll would postpone the reload forever when polls come faster than it settles.
    const poll = setInterval(() => {
      void stat(file)
        .then((s) => {
          if (s.mtimeMs !== this.lastMtime && !timer) schedule();
        })
        .catch(() => undefined);
    }, this.options.pollIntervalMs ?? 2000);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    watcher?.close();
  }

  /** Re-reads the file now; returns the problem when the edit was refused. */
  async reload(): Promise<string | undefined> {
    const file = this.cluster.file;
    this.lastMtime = (await stat(file).catch(() => undefined))?.mtimeMs ?? this.lastMtime;
    let next: ClusterConfig;
    try {
      next = loadClusterFile(file, { env: this.options.env ?? {} });
    } catch (error) {
      const message = error instanceof ConfigError ? error.message : errorMessage(error);
      if (message !== this.lastError) this.log.error({ file, err: message }, 'cluster file edit refused; the last good exports stay in force');
      this.lastError = message;
      return message;
    }
    this.lastError = undefined;
    if (next.metadata.name !== this.cluster.metadata.name) {
      const message = `${file}: metadata.name changed to "${next.metadata.name}"; a gateway cannot change its cluster without a restart`;
      this.log.error({ file }, message);
      this.lastError = message;
      return message;
    }
    const exports = exportsFromConfig(next.spec.exports);
    if (JSON.stringify([...exports]) === JSON.stringify([...this.state.exports])) return undefined;
    this.state = { exports, source: file };
    this.log.info({ file, exports: exports.size }, 'exports reloaded');
    for (const listener of this.listeners) listener(this.state);
    return undefined;
  }
}
