import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadFederationFile } from '../config/load.js';
import type { FederationConfig } from '../config/federation-config.js';
import { createRootLogger, type Logger } from '../core/logger.js';
import { createMetricsRegistry } from '../admin/metrics.js';
import { Controller } from '../controller/controller.js';
import { JournalStore } from '../store/journal/journal-store.js';
import { RedisStore } from '../store/redis/redis-store.js';
import type { Store } from '../store/store.js';
import type { CliIo } from './io.js';
import { installProcessGuards } from './process-guards.js';
import { untilSignal } from './signals.js';

/**
 * The store the federation config asks for: Redis (single, Sentinel, TLS, ACL), or the embedded
 * store journaled to `spec.store.dataDir`. The embedded store's data dir is locked and read here,
 * so a dir that cannot be used (in use by another controller, full, read-only, damaged) stops the
 * start with one clear error rather than a retry loop.
 */
export async function createStore(federation: FederationConfig, log: Logger): Promise<Store> {
  const store = federation.spec.store;
  if (!store.url && store.sentinels.length === 0) {
    const journal = new JournalStore({ dataDir: federation.storeDataDir, changeLogLength: store.changeLogLength, log: log.child({ component: 'store' }) });
    await journal.load();
    return journal;
  }
  const password = store.passwordFile ? readFileSync(store.passwordFile, 'utf8').trim() : process.env.FEDGATE_STORE_PASSWORD;
  return new RedisStore({
    url: store.url,
    sentinels: store.sentinels,
    sentinelName: store.sentinelName,
    username: store.username,
    password,
    tls: store.tls,
    keyPrefix: store.keyPrefix,
    changeLogLength: store.changeLogLength,
    log: log.child({ component: 'store' }),
  });
}

export function registerControllerCommand(program: Command, io: CliIo): void {
  program
    .command('controller')
    .description('run the federation controller')
    .option('--config <file>', 'federation.yaml', 'federation-config/federation.yaml')
    .action(async (options: { config: string }) => {
      const federation = loadFederationFile(options.config);
      const log = createRootLogger({ name: 'fedgate-controller', base: { federation: federation.metadata.name } });
      const registry = createMetricsRegistry({ component: 'controller' });
      installProcessGuards(log);
      const store = await createStore(federation, log);
      const controller = new Controller({ federation, store, log, registry });
      await controller.start();
      io.err(`fedgate controller: api ${controller.addresses.api}, join ${controller.addresses.join}, admin http://${controller.addresses.admin}`);
      const signal = await untilSignal();
      log.info({ signal }, 'shutting down');
      await controller.stop();
      log.flush();
    });
}
