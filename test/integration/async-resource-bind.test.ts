import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';

describe('dropDeprecatedBindProperty', () => {
  // In a child process: the change is process-wide and this test runner must keep Node's own bind.
  function inChild(source: string): string {
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', source], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    if (result.status !== 0) throw new Error(result.stderr);
    return result.stdout.trim();
  }
  const module = new URL('../../dist/src/core/async-resource-bind.js', import.meta.url).href; // built by npm test before jest runs;

  it('keeps the async scope, this, arguments and length, and drops the accessor', () => {
    const out = inChild(`
      import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
      import { dropDeprecatedBindProperty } from '${module}';
      const installed = dropDeprecatedBindProperty();
      const storage = new AsyncLocalStorage();
      const bound = storage.run('inside', () => new AsyncResource('t').bind(function (a, b) { return [storage.getStore(), this?.tag, a + b]; }));
      const withThis = storage.run('inside-2', () => AsyncResource.bind(function () { return [storage.getStore(), this.tag]; }, 'T', { tag: 'given' }));
      let error = '';
      try { new AsyncResource('t').bind(42); } catch (e) { error = e.code; }
      console.log(JSON.stringify({ installed, call: bound.call({ tag: 'caller' }, 1, 2), length: bound.length, accessor: 'asyncResource' in bound, withThis: withThis(), error }));
    `);
    const result = JSON.parse(out) as { installed: boolean; call: unknown[]; length: number; accessor: boolean; withThis: unknown[]; error: string };
    expect(result).toEqual({ installed: true, call: ['inside', 'caller', 3], length: 2, accessor: false, withThis: ['inside-2', 'given'], error: 'ERR_INVALID_ARG_TYPE' });
  });

  it('leaves this process (Node as shipped) with the accessor it documents as deprecated', () => {
    const bound = new AsyncResource('t').bind(() => executionAsyncId());
    expect(Object.prototype.hasOwnProperty.call(bound, 'asyncResource')).toBe(process.versions.node.split('.').map(Number)[0] as number < 25);
    expect(new AsyncLocalStorage()).toBeDefined();
  });
});
