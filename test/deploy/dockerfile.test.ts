/**
 * The Dockerfile cannot be built here (no Docker engine), so its structure is checked instead:
 * a build stage and a runtime stage on node:20-bookworm-slim, production dependencies only at
 * runtime, a numeric non-root user, the ports the processes listen on, and an entry point that is
 * where the TypeScript build puts src/bin/fedgate.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVER_NODE_FLAGS } from '../../src/core/node-flags.js';

const ROOT = process.cwd();

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: (keyword as string).toUpperCase(), args: rest.join(' ') };
    });
}

const dockerfile = (): Instruction[] => instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

function stages(): Instruction[][] {
  const result: Instruction[][] = [];
  for (const instruction of dockerfile()) {
    if (instruction.keyword === 'FROM') result.push([]);
    result[result.length - 1]?.push(instruction);
  }
  return result;
}

describe('Dockerfile', () => {
  it('builds in one node:20-bookworm-slim stage and runs in another', () => {
    const [build, runtime, ...more] = stages();
    expect(more).toEqual([]);
    expect(build?.[0]?.args).toBe('node:20-bookworm-slim AS build');
    expect(runtime?.[0]?.args).toBe('node:20-bookworm-slim AS runtime');
    const runs = (stage: Instruction[] | undefined): string => (stage ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' && ');
    expect(runs(build)).toMatch(/npm ci\b.*npm run build/);
    expect(runs(runtime)).toContain('npm ci --omit=dev');
    expect(runs(runtime)).not.toContain('npm run build');
    expect((runtime ?? []).filter((i) => i.keyword === 'COPY').map((i) => i.args)).toEqual(expect.arrayContaining(['--from=build /src/dist/src ./dist/src']));
  });

  it('runs as a numeric non-root user with the entry point the build produces', () => {
    const runtime = stages()[1] ?? [];
    const user = runtime.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(user).toEqual(['1000:1000']);
    const entrypoint = runtime.find((i) => i.keyword === 'ENTRYPOINT');
    expect(JSON.parse(entrypoint?.args ?? 'null')).toEqual(['node', ...SERVER_NODE_FLAGS, 'dist/src/bin/fedgate.js']);
    expect(runtime.find((i) => i.keyword === 'WORKDIR')?.args).toBe('/app');
    // tsc puts <rootDir>/src/bin/fedgate.ts at <outDir>/src/bin/fedgate.js.
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir]).toEqual(['.', 'dist']);
    expect(existsSync(join(ROOT, 'src', 'bin', 'fedgate.ts'))).toBe(true);
  });

  it('exposes the controller and gateway ports', () => {
    const ports = dockerfile()
      .filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/).map(Number));
    expect(ports.sort()).toEqual([15001, 15010, 15012, 15014, 15021, 15443]);
  });

  it('keeps dependencies, build output and secrets out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git', '.fedgate']));
    // The build needs these (tsconfig.build.json compiles src and bench; bench imports test/support).
    for (const needed of ['src', 'bench', 'test', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) expect(ignored).not.toContain(needed);
  });
});
