/** One request through the gateway: resolves to an outcome, never throws for expected failures. */
export type Handler<C> = (ctx: C) => Promise<Outcome>;

/** A stage of the pipeline (timeout, retry, authorize, fault …), wrapping the next one. */
export type Layer<C, N = C> = (next: Handler<N>) => Handler<C>;

/** Builds a handler from layers, outermost first. Done once per listener, not per request. */
export function compose<C>(layers: ReadonlyArray<Layer<C>>, terminal: Handler<C>): Handler<C> {
  let handler = terminal;
  for (let i = layers.length - 1; i >= 0; i--) handler = (layers[i] as Layer<C>)(handler);
  return handler;
}

import type { Outcome } from './outcome.js';
export type { Outcome };
