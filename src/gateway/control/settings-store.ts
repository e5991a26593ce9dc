import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { deepFreeze } from '../../config/shape.js';
import { SettingsFile, validateDefaults, type FederationSettings } from './settings-file.js';

const BUILTIN_DEFAULTS: GatewayDefaults = deepFreeze(gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults);

/** The defaults a gateway uses before it has ever heard from a federation. */
export function builtinDefaults(): GatewayDefaults {
  return BUILTIN_DEFAULTS;
}

/**
 * The federation's settings as this gateway applies them: from federation-config (static mode),
 * from the controller (Sync), and in between from what the last run saved, so a gateway that
 * starts while the controller is away runs with the federation's timeouts, retries, health checks
 * and outlier detection rather than built-in ones.
 */
export class SettingsStore {
  private value: FederationSettings = { federation: '', defaults: BUILTIN_DEFAULTS };
  private readonly file: SettingsFile | undefined;

  constructor(
    private readonly options: {
      /** Where settings.json lives; none in static mode. */
      stateDir?: string;
      log: Logger;
      onChange: (settings: FederationSettings) => void;
    },
  ) {
    this.file = options.stateDir ? new SettingsFile(options.stateDir) : undefined;
  }

  get current(): FederationSettings {
    return this.value;
  }

  loadPersisted(): void {
    const loaded = this.file?.load();
    if (!loaded) return;
    if (loaded.problem) this.options.log.warn({ problem: loaded.problem }, 'persisted federation settings unusable; using built-in defaults until the controller sends them');
    if (loaded.settings) this.set(loaded.settings);
  }

  /** Static mode: the settings are configuration, read once. */
  useStatic(settings: FederationSettings): void {
    this.set(settings);
  }

  /** Settings from the controller: checked with the federation.yaml schema, applied, and saved. */
  apply(federation: string, defaultsJson: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(defaultsJson);
    } catch (error) {
      this.options.log.error({ err: errorMessage(error) }, 'federation settings are not JSON; keeping the current ones');
      return;
    }
    const { defaults, problem } = validateDefaults(parsed);
    if (!defaults) {
      this.options.log.error({ problem }, 'federation defaults rejected; keeping the current ones');
      return;
    }
    if (federation === this.value.federation && JSON.stringify(defaults) === JSON.stringify(this.value.defaults)) return;
    this.set({ federation, defaults });
    try {
      this.file?.save(this.value);
    } catch (error) {
      this.options.log.error({ err: errorMessage(error) }, 'could not persist federation settings');
    }
  }

  private set(settings: FederationSettings): void {
    this.value = settings;
    this.options.onChange(settings);
  }
}
