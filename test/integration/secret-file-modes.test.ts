/**
 * Issue 28, finding 8: overwriting an existing key or token file kept its old mode (0644 stayed
 * 0644). Each writer of a secret is run against a file pre-created with mode 0644 and must leave
 * it 0600, with the new content.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/io.js';
import { createSilentLogger } from '../../src/core/logger.js';
import { ControllerIdentity } from '../../src/controller/controller-identity.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { startTestController } from '../support/control-plane.js';

const modeOf = (path: string): number => statSync(path).mode & 0o777;

function captureIo(): CliIo & { lines: string[] } {
  const lines: string[] = [];
  return { lines, out: (line) => lines.push(line), err: (line) => lines.push(line) };
}

/** A world-readable file where the secret will go, as an earlier tool (or a careless copy) left it. */
function plantWorldReadable(path: string, content = 'stale\n'): void {
  writeFileSync(path, content);
  chmodSync(path, 0o644);
  expect(modeOf(path)).toBe(0o644);
}

describe('finding 8: secrets written over an existing 0644 file end up 0600', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-modes-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('fedgate ca issue: tls.key', async () => {
    PkiDirectory.init(join(dir, 'ca'), { trustDomain: 'us-east.acme.internal' });
    const out = join(dir, 'leaf');
    mkdirSync(out);
    plantWorldReadable(join(out, 'tls.key'));
    const io = captureIo();
    const code = await runCli(['node', 'fedgate', 'ca', 'issue', '--ca', join(dir, 'ca'), '--spiffe-id', 'spiffe://us-east.acme.internal/ns/default/sa/web', '--out', out], io);
    expect({ code, output: io.lines }).toMatchObject({ code: 0 });
    expect(modeOf(join(out, 'tls.key'))).toBe(0o600);
    expect(readFileSync(join(out, 'tls.key'), 'utf8')).toContain('BEGIN PRIVATE KEY');
    expect(modeOf(join(out, 'tls.crt'))).toBe(0o644);
  });

  it('fedgate ca init --force: the CA key', async () => {
    const caDir = join(dir, 'ca');
    PkiDirectory.init(caDir, { trustDomain: 'us-east.acme.internal' });
    chmodSync(join(caDir, 'tls.key'), 0o644);
    const io = captureIo();
    const code = await runCli(['node', 'fedgate', 'ca', 'init', '--trust-domain', 'us-east.acme.internal', '--out', caDir, '--force'], io);
    expect({ code, output: io.lines }).toMatchObject({ code: 0 });
    expect(modeOf(join(caDir, 'tls.key'))).toBe(0o600);
    expect(new PkiDirectory(caDir).ca().trustDomain).toBe('us-east.acme.internal');
  });

  it('fedgate token create --out: the join token', async () => {
    const control = await startTestController(new MemoryStore(), dir);
    try {
      const tokenFile = join(dir, 'tokens', 'us-east');
      mkdirSync(join(dir, 'tokens'));
      plantWorldReadable(tokenFile);
      const io = captureIo();
      const code = await runCli(['node', 'fedgate', 'token', 'create', '--cluster', 'us-east', '--out', tokenFile, '--controller', control.controller.addresses.api, '--credentials', join(control.pkiDir, 'admin')], io);
      expect({ code, output: io.lines }).toMatchObject({ code: 0 });
      expect(modeOf(tokenFile)).toBe(0o600);
      expect(readFileSync(tokenFile, 'utf8')).not.toBe('stale\n');
    } finally {
      await control.stop();
    }
  });

  it("the controller's operator credentials (<pkiDir>/admin/tls.key)", () => {
    const pkiDir = join(dir, 'controller-pki');
    PkiDirectory.init(pkiDir, { trustDomain: 'acme.internal' });
    // Credentials from another CA are replaced at start: the key file is rewritten.
    const foreign = PkiDirectory.init(join(dir, 'other'), { trustDomain: 'acme.internal' }).ca();
    const adminDir = join(pkiDir, 'admin');
    mkdirSync(adminDir);
    writeFileSync(join(adminDir, 'tls.crt'), foreign.certificatePem);
    plantWorldReadable(join(adminDir, 'tls.key'));
    const identity = ControllerIdentity.load('acme.internal', pkiDir, createSilentLogger());
    expect(modeOf(join(adminDir, 'tls.key'))).toBe(0o600);
    expect(new X509Certificate(readFileSync(join(adminDir, 'tls.crt'))).checkIssued(new X509Certificate(identity.caPem))).toBe(true);
  });
});
