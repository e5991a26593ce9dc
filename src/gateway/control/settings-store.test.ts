import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TRUST_DOMAIN_ALIASES, gatewayDefaultsDocument } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { FederationSettings } from './settings-file.js';
import { SettingsFile } from './settings-file.js';
import { builtinDefaults, SettingsStore } from './settings-store.js';

function defaultsJson(change: (doc: Record<string, Record<string, unknown>>) => void = () => undefined): string {
  const doc = gatewayDefaultsDocument(builtinDefaults()) as Record<string, Record<string, unknown>>;
  change(doc);
  return JSON.stringify(doc);
}

describe('SettingsStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-settings-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function store(stateDir: string | undefined = dir): { store: SettingsStore; changes: FederationSettings[]; log: ReturnType<typeof createSilentLogger> } {
    const changes: FederationSettings[] = [];
    const log = createSilentLogger();
    return { store: new SettingsStore({ ...(stateDir ? { stateDir } : {}), log, onChange: (s) => changes.push(s) }), changes, log };
  }

  it('starts from built-in defaults and the default aliases, without a federation', () => {
    const { store: s, changes } = store();
    s.loadPersisted();
    expect(s.current).toEqual({ federation: '', defaults: builtinDefaults(), trustDomainAliases: DEFAULT_TRUST_DOMAIN_ALIASES });
    expect(changes).toEqual([]);
    expect(Object.isFrozen(builtinDefaults())).toBe(true);
  });

  it('applies the controller’s settings, saves them, and a restarted gateway starts from them', () => {
    const first = store();
    first.store.apply('acme', defaultsJson((d) => (d.healthCheck = { ...d.healthCheck, interval: '2s' })), JSON.stringify([{ alias: 'cluster.local', trustDomains: ['us-east.acme.internal'] }]));
    expect(first.changes).toHaveLength(1);
    expect(first.store.current.federation).toBe('acme');
    expect(first.store.current.defaults.healthCheck.interval).toBe(2000);
    // The same settings again change nothing.
    first.store.apply('acme', defaultsJson((d) => (d.healthCheck = { ...d.healthCheck, interval: '2s' })), JSON.stringify([{ alias: 'cluster.local', trustDomains: ['us-east.acme.internal'] }]));
    expect(first.changes).toHaveLength(1);

    const restarted = store();
    restarted.store.loadPersisted();
    expect(restarted.changes).toHaveLength(1);
    expect(restarted.store.current).toEqual(first.store.current);
  });

  it('takes the default aliases from a controller that sends none', () => {
    const { store: s } = store();
    s.apply('acme', defaultsJson(), '');
    expect(s.current.trustDomainAliases).toEqual([{ alias: 'cluster.local' }]);
  });

  it('keeps the current settings when the controller’s are not JSON or fail validation, and says why', () => {
    const { store: s, changes, log } = store();
    const error = jest.spyOn(log, 'error');
    s.apply('acme', '{not json', '');
    s.apply('acme', defaultsJson((d) => (d.healthCheck = { ...d.healthCheck, interval: 'soon' })), '');
    s.apply('acme', defaultsJson(), JSON.stringify([{ alias: 'mesh.local', trustDomains: [] }]));
    expect(changes).toEqual([]);
    expect(s.current.federation).toBe('');
    expect(error.mock.calls.map((c) => c[1])).toEqual(['federation settings are not JSON; keeping the current ones', 'federation settings rejected; keeping the current ones', 'federation settings rejected; keeping the current ones']);
    expect(error.mock.calls[1]?.[0]).toEqual({ problem: expect.stringMatching(/^defaults\.healthCheck\.interval: /) });
  });

  it('warns about a damaged settings file and keeps built-in defaults', () => {
    const { store: s, changes, log } = store();
    writeFileSync(new SettingsFile(dir).file, '{"version":1');
    const warn = jest.spyOn(log, 'warn');
    s.loadPersisted();
    expect(changes).toEqual([]);
    expect(warn).toHaveBeenCalledWith({ problem: expect.stringContaining('not valid JSON') }, 'persisted federation settings unusable; using built-in defaults until the controller sends them');
  });

  it('in static mode, persists nothing and takes the settings as given', () => {
    const { store: s, changes } = store(undefined);
    s.loadPersisted();
    const settings: FederationSettings = { federation: 'static', defaults: builtinDefaults(), trustDomainAliases: [] };
    s.useStatic(settings);
    expect(changes).toEqual([settings]);
    s.apply('acme', defaultsJson(), '');
    expect(s.current.federation).toBe('acme');
  });

  it('logs a settings file it cannot write and still applies the settings', () => {
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, 'a file where the state directory should be');
    const { store: s, changes, log } = store(blocked);
    const error = jest.spyOn(log, 'error');
    s.apply('acme', defaultsJson(), '');
    expect(changes).toHaveLength(1);
    expect(error).toHaveBeenCalledWith({ err: expect.any(String) }, 'could not persist federation settings');
  });
});
