/** A connection a listener holds, as far as the limiter needs to know it. */
export interface LimitedConnection {
  /** Requests (or streams) in flight on it now. */
  readonly active: number;
  /** performance.now() of its last request, or of its arrival. */
  readonly lastActive: number;
  /**
   * The peer proved who it is (an authenticated gateway): such a connection makes room only when
   * no unverified one can (a flood of anonymous handshakes must not push member gateways out).
   */
  readonly verified?: boolean;
  /** Closes it (gracefully where the protocol allows). */
  close(): void;
}

export type ConnectionRefusal = 'connections' | 'idle-evicted';

/**
 * Caps the connections one listener (or one peer on it) may hold, so that clients holding
 * connections open — idle h2c sessions that sent only a preface, keep-alive sockets nobody uses —
 * cannot take every file descriptor of the process. At the cap, the connection idle the longest
 * makes room for the new one (a client that is using its connection keeps it); only when every
 * connection has requests in flight is the new one refused.
 */
export class ConnectionLimiter<C extends LimitedConnection> {
  private readonly connections = new Set<C>();

  constructor(
    private readonly max: number,
    private readonly onRefusal: (kind: ConnectionRefusal) => void,
  ) {}

  get size(): number {
    return this.connections.size;
  }

  /** Admits a new connection; false (and the caller closes it) when none could make room. */
  admit(connection: C): boolean {
    if (this.connections.size >= this.max) {
      const idlest = this.idlest();
      if (!idlest) {
        this.onRefusal('connections');
        return false;
      }
      this.connections.delete(idlest);
      this.onRefusal('idle-evicted');
      idlest.close();
    }
    this.connections.add(connection);
    return true;
  }

  release(connection: C): void {
    this.connections.delete(connection);
  }

  closeAll(): void {
    for (const connection of [...this.connections]) connection.close();
    this.connections.clear();
  }

  private idlest(): C | undefined {
    let found: C | undefined;
    for (const connection of this.connections) {
      if (connection.active > 0) continue;
      if (!found || rank(connection) < rank(found) || (rank(connection) === rank(found) && connection.lastActive < found.lastActive)) found = connection;
    }
    return found;
  }
}

function rank(connection: LimitedConnection): number {
  return connection.verified ? 1 : 0;
}
