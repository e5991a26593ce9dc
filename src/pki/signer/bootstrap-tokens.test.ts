import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../core/clock.js';
import { BootstrapTokens } from './bootstrap-tokens.js';

describe('BootstrapTokens', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-bootstrap-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores only a hash, in a private file of a private directory', () => {
    const tokens = new BootstrapTokens(join(dir, 'tokens'));
    const { token, id } = tokens.create(60_000);
    expect(BootstrapTokens.isBootstrapToken(token)).toBe(true);
    expect(statSync(join(dir, 'tokens')).mode & 0o777).toBe(0o700);
    const [file] = readdirSync(join(dir, 'tokens'));
    expect(file).toMatch(new RegExp(`^${id}[0-9a-f]{52}\\.json$`));
    expect(statSync(join(dir, 'tokens', file as string)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'tokens', file as string), 'utf8')).not.toContain(token.slice(4));
  });

  it('can be spent exactly once, and not after it expired', () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const tokens = new BootstrapTokens(dir, clock);
    const { token, id } = tokens.create(60_000);
    expect(tokens.consume(token)).toEqual({ id });
    expect(() => tokens.consume(token)).toThrow(expect.objectContaining({ code: 'FEDGATE_ERR_TOKEN_INVALID' }));
    const late = tokens.create(60_000);
    clock.advance(60_000);
    expect(() => tokens.consume(late.token)).toThrow(expect.objectContaining({ code: 'FEDGATE_ERR_TOKEN_EXPIRED', message: 'bootstrap token expired at 2030-01-01T00:01:00.000Z' }));
    expect(() => tokens.consume('eyJhbGciOiJSUzI1NiJ9.e30.sig')).toThrow('not a signer bootstrap token');
  });

  it('prunes expired tokens and leaves live ones', () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const tokens = new BootstrapTokens(dir, clock);
    tokens.create(10_000);
    const live = tokens.create(120_000);
    clock.advance(60_000);
    expect(tokens.prune()).toBe(1);
    expect(tokens.consume(live.token)).toEqual({ id: live.id });
  });
});
