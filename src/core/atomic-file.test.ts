import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeFileAtomicSync, type AtomicWriteOptions } from './atomic-file.js';

const modeOf = (path: string): number => statSync(path).mode & 0o777;

const variants: Array<[string, (path: string, data: string | Uint8Array, options?: AtomicWriteOptions) => Promise<void>]> = [
  ['writeFileAtomicSync', async (path, data, options) => writeFileAtomicSync(path, data, options)],
  ['writeFileAtomic', writeFileAtomic],
];

describe.each(variants)('%s', (_name, write) => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-atomic-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a private (0600) file by default, and leaves no temporary file behind', async () => {
    const file = join(dir, 'tls.key');
    await write(file, 'secret\n');
    expect(readFileSync(file, 'utf8')).toBe('secret\n');
    expect(modeOf(file)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['tls.key']);
  });

  it('gives an overwritten 0644 file the requested mode 0600 (an old mode never survives)', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'old');
    chmodSync(file, 0o644);
    await write(file, 'new', { mode: 0o600 });
    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(modeOf(file)).toBe(0o600);
  });

  it('sets exactly the mode asked for, whatever the umask', async () => {
    const previous = process.umask(0o077);
    try {
      await write(join(dir, 'bundle.json'), '{}', { mode: 0o644 });
    } finally {
      process.umask(previous);
    }
    expect(modeOf(join(dir, 'bundle.json'))).toBe(0o644);
  });

  it('writes binary data whole', async () => {
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 256));
    await write(join(dir, 'blob'), data);
    expect(readFileSync(join(dir, 'blob')).equals(data)).toBe(true);
  });

  it('replaces a symlink at the path instead of writing through it', async () => {
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'untouched');
    chmodSync(target, 0o644);
    const link = join(dir, 'tls.key');
    symlinkSync(target, link);
    await write(link, 'key');
    expect(lstatSync(link).isSymbolicLink()).toBe(false);
    expect(readFileSync(link, 'utf8')).toBe('key');
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(modeOf(target)).toBe(0o644);
  });

  it('keeps the old file and removes the temporary one when the final rename fails', async () => {
    // A non-empty directory at the path: everything succeeds up to rename(2), which fails.
    const path = join(dir, 'state');
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'kept');
    await expect(write(path, 'data')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readFileSync(join(path, 'inside'), 'utf8')).toBe('kept');
    expect(readdirSync(dir)).toEqual(['state']);
  });

  it('fails without creating anything when the directory does not exist', async () => {
    await expect(write(join(dir, 'missing', 'file'), 'data')).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('writeFileAtomicSync on a full disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-atomic-full-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the old content, names the file and leaves no temporary file when the disk is full', () => {
    // A real full disk: a 16 KiB tmpfs (the tests run as root, as CI does).
    const mount = join(dir, 'full');
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mount]);
    try {
      const file = join(mount, 'catalog.json');
      writeFileAtomicSync(file, 'good');
      expect(() => writeFileAtomicSync(file, Buffer.alloc(64 * 1024, 1))).toThrow(new RegExp(`cannot write ${file}: .*ENOSPC`));
      expect(readFileSync(file, 'utf8')).toBe('good');
      expect(readdirSync(mount)).toEqual(['catalog.json']);
    } finally {
      execFileSync('umount', [mount]);
    }
  });

  it('names the file when its directory is missing', () => {
    const file = join(dir, 'missing', 'settings.json');
    expect(() => writeFileAtomicSync(file, '{}')).toThrow(`cannot write ${file}: ENOENT`);
  });
});
