import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-atomic-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the content whole and leaves no temporary file', () => {
    const file = join(dir, 'state.json');
    writeFileAtomic(file, '{"a":1}');
    writeFileAtomic(file, '{"a":2}');
    expect(readFileSync(file, 'utf8')).toBe('{"a":2}');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('gives the result the requested mode even over a wider existing file', () => {
    const file = join(dir, 'tls.key');
    writeFileSync(file, 'old', { mode: 0o644 });
    chmodSync(file, 0o644);
    writeFileAtomic(file, 'secret', { mode: 0o600 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps the old content, names the file and leaves no temporary file when the disk is full', () => {
    // A real full disk: a 16 KiB tmpfs (the tests run as root, as CI does).
    const mount = join(dir, 'full');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mount]);
    try {
      const file = join(mount, 'catalog.json');
      writeFileAtomic(file, 'good');
      expect(() => writeFileAtomic(file, Buffer.alloc(64 * 1024, 1))).toThrow(new RegExp(`cannot write ${file}: .*ENOSPC`));
      expect(readFileSync(file, 'utf8')).toBe('good');
      expect(readdirSync(mount)).toEqual(['catalog.json']);
    } finally {
      execFileSync('umount', [mount]);
    }
  });

  it('names the file when its directory is missing', () => {
    const file = join(dir, 'missing', 'settings.json');
    expect(() => writeFileAtomic(file, '{}')).toThrow(`cannot write ${file}: ENOENT`);
  });
});
