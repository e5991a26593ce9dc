import type { ExportSpec } from '../../proto/gen/fedgate.js';

/** The local cluster's exports, as discovery sees them; the controller client mirrors them upwards. */
export interface ExportSource {
  /** The complete current set. */
  current(): ExportSpec[];
  /** Called after any change; the client works out what changed against what it last sent. */
  onChange(listener: () => void): () => void;
}

/** An export source whose set is replaced by hand (tests, benchmarks, static mode). */
export class StaticExportSource implements ExportSource {
  private specs: ExportSpec[];
  private readonly listeners = new Set<() => void>();

  constructor(specs: ExportSpec[] = []) {
    this.specs = specs;
  }

  current(): ExportSpec[] {
    return this.specs;
  }

  set(specs: ExportSpec[]): void {
    this.specs = specs;
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
