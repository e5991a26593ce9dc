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
import { ErrorCodes } from '../core/errors.js';
import type { CliIo } from './io.js';
import { checkConfigFile, explainStartFailure, listenProblem } from './startup-errors.js';
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
      checkConfigFile(options.config, '--config', 'federation.yaml (e.g. federation-config/federation.yaml)');
      const federation = loadFederationFile(options.config);
      const log = createRootLogger({ name: 'fedgate-controller', base: { federation: federation.metadata.name } });
      const registry = createMetricsRegistry({ component: 'controller' });
      installProcessGuards(log);
      const spec = federation.spec.controller;
      const listeners = [
        { field: 'spec.controller.listen', address: spec.listen },
        { field: 'spec.controller.joinListen', address: spec.joinListen },
        { field: 'spec.controller.admin', address: spec.admin },
      ];
      const dirs = [{ field: 'spec.controller.pkiDir', dir: federation.controllerPkiDir, code: ErrorCodes.PKI_DIR_UNUSABLE }];
      const busy = await listenProblem(federation.file, listeners);
      if (busy) throw busy;
      const store = await createStore(federation, log);
      let controller: Controller | undefined;
      try {
        controller = new Controller({ federation, store, log, registry });
        await controller.start();
      } catch (error) {
        // Closed first: the address probes in explainStartFailure must not find this process's own listeners.
        await controller?.stop().catch(() => undefined);
        await store.close().catch(() => undefined);
        log.flush();
        throw await explainStartFailure(error, federation.file, listeners, dirs);
      }
      io.err(`fedgate controller: api ${controller.addresses.api}, join ${controller.addresses.join}, admin http://${controller.addresses.admin}`);
      const signal = await untilSignal();
      log.info({ signal }, 'shutting down');
      await controller.stop();
      log.flush();
    });
}
