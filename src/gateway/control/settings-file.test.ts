import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayDefaultsDocument, gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { SettingsFile, validateDefaults } from './settings-file.js';

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
    file.save({ federation: 'acme', defaults: defaults as GatewayDefaults });
    const loaded = file.load();
    expect(loaded.problem).toBeUndefined();
    expect(loaded.settings?.federation).toBe('acme');
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
});
