import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayDefaultsDocument, gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { DEFAULT_TRUST_DOMAIN_ALIASES } from '../../config/federation-config.js';
import { SettingsFile, validateAliases, validateDefaults } from './settings-file.js';

describe('SettingsFile (settings.json)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-settings-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back exactly what it wrote, durations included (they were written as numbers and never read back)', () => {
    const builtIn = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
    const document = gatewayDefaultsDocument(builtIn) as Record<string, Record<string, unknown>>;
    document.healthCheck = { ...document.healthCheck, interval: '750ms', timeout: '300ms' };
    document.outlierDetection = { ...document.outlierDetection, baseEjectionTime: '7s' };
    const { defaults } = validateDefaults(document);
    expect(defaults).toBeDefined();
    const file = new SettingsFile(dir);
    file.save({ federation: 'acme', defaults: defaults as GatewayDefaults, trustDomainAliases: [{ alias: 'cluster.local', trustDomains: ['us-east.acme.internal'] }] });
    const loaded = file.load();
    expect(loaded.problem).toBeUndefined();
    expect(loaded.settings?.federation).toBe('acme');
    expect(loaded.settings?.trustDomainAliases).toEqual([{ alias: 'cluster.local', trustDomains: ['us-east.acme.internal'] }]);
    expect(loaded.settings?.defaults).toEqual(defaults);
    expect(loaded.settings?.defaults.healthCheck.interval).toBe(750);
    expect(loaded.settings?.defaults.outlierDetection.baseEjectionTime).toBe(7000);
    expect(JSON.parse(readFileSync(file.file, 'utf8')).defaults.healthCheck.interval).toBe('750ms');
  });

  it('reports a damaged file with its path and keeps nothing from it', () => {
    const file = new SettingsFile(dir);
    expect(file.load()).toEqual({});
    writeFileSync(file.file, '{"version":1,"federation":"acme","defaults":{"healthCheck":{"interval":"soon"}}}');
    expect(file.load().problem).toMatch(new RegExp(`^${file.file}: defaults.healthCheck.interval: `));
    writeFileSync(file.file, '');
    expect(file.load().problem).toBe(`${file.file}: not valid JSON (Unexpected end of JSON input)`);
  });

  it('reads back the aliases as the controller sends them: the default plain-name alias arrives as an object without trustDomains', () => {
    // The controller sends the converted form as JSON; every gateway restarted after the aliases
    // landed refused it ("trustDomainAliases[0].trustDomains: required") and kept built-in settings.
    const sent = JSON.parse(JSON.stringify(DEFAULT_TRUST_DOMAIN_ALIASES)) as unknown;
    expect(validateAliases(sent)).toEqual({ aliases: [{ alias: 'cluster.local' }] });
    expect(validateAliases(['cluster.local', { alias: 'mesh.local', trustDomains: ['east.acme.internal'] }])).toEqual({ aliases: [{ alias: 'cluster.local' }, { alias: 'mesh.local', trustDomains: ['east.acme.internal'] }] });
    expect(validateAliases([{ alias: 'mesh.local', trustDomains: [] }]).problem).toMatch(/^trustDomainAliases\[0\]\.trustDomains: /);
  });
});
