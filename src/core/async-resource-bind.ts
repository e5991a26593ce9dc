import { AsyncResource } from 'node:async_hooks';

/**
 * Node.js before 25 gives every function bound with `AsyncResource.prototype.bind` a deprecated
 * `asyncResource` accessor (DEP0172), built from two `util.deprecate()` wrappers whose prototypes
 * are rewritten on each call. Node's HTTP/2 client binds one function per request (`request()`), so
 * on a gateway this is paid per forwarded request: about 6 % of the outbound gateway's CPU and 4 KiB
 * of its 31 KiB of garbage per request (docs/benchmarks.md). Node 25 dropped the property
 * (nodejs/node#58618, End-of-Life); this gives older versions the same `bind`: the same async
 * scope, `this` and `length`, without the accessor. Nothing fedgate loads reads the property.
 *
 * Installed by the long-running gateway only, at start, before any request. Returns whether it
 * changed anything (false on a Node.js that no longer adds the property).
 */
export function dropDeprecatedBindProperty(): boolean {
  const probe = new AsyncResource('fedgate-probe', { requireManualDestroy: true }).bind(() => undefined);
  if (!Object.prototype.hasOwnProperty.call(probe, 'asyncResource')) return false;
  const original = AsyncResource.prototype.bind;
  AsyncResource.prototype.bind = function bind<Func extends (...args: unknown[]) => unknown>(this: AsyncResource, fn: Func, thisArg?: ThisParameterType<Func>): Func {
    // Node's own argument validation and error for a non-function.
    if (typeof fn !== 'function') return Reflect.apply(original, this, [fn, thisArg]) as Func;
    const bound = thisArg === undefined ? inScopeOf(this, fn) : (this.runInAsyncScope.bind(this, fn, thisArg) as (...args: unknown[]) => unknown);
    Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
    return bound as unknown as Func;
  };
  return true;
}

/** `fn` run in `resource`'s async scope with the caller's `this`, as Node's bind without thisArg. */
function inScopeOf(resource: AsyncResource, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}
