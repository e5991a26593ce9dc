import { ConnectionLimiter, type ConnectionRefusal, type LimitedConnection } from './connection-limiter.js';

class Conn implements LimitedConnection {
  closed = false;
  constructor(
    readonly name: string,
    public active: number,
    public lastActive: number,
    readonly verified = false,
  ) {}
  close(): void {
    this.closed = true;
  }
}

function setup(max: number): { limiter: ConnectionLimiter<Conn>; refusals: ConnectionRefusal[] } {
  const refusals: ConnectionRefusal[] = [];
  return { limiter: new ConnectionLimiter<Conn>(max, (kind) => refusals.push(kind)), refusals };
}

describe('ConnectionLimiter', () => {
  it('admits connections up to the cap', () => {
    const { limiter, refusals } = setup(2);
    expect(limiter.admit(new Conn('a', 0, 1))).toBe(true);
    expect(limiter.admit(new Conn('b', 0, 2))).toBe(true);
    expect(limiter.size).toBe(2);
    expect(refusals).toEqual([]);
  });

  it('at the cap, closes the connection idle the longest to make room; busy connections keep theirs', () => {
    const { limiter, refusals } = setup(3);
    const busyOld = new Conn('busy', 1, 0);
    const idleOld = new Conn('idle-old', 0, 10);
    const idleNew = new Conn('idle-new', 0, 20);
    for (const c of [busyOld, idleOld, idleNew]) limiter.admit(c);
    expect(limiter.admit(new Conn('new', 0, 30))).toBe(true);
    expect(idleOld.closed).toBe(true);
    expect(busyOld.closed).toBe(false);
    expect(idleNew.closed).toBe(false);
    expect(refusals).toEqual(['idle-evicted']);
    expect(limiter.size).toBe(3);
  });

  it('evicts an unverified connection before a verified gateway, even a more recently active one', () => {
    const { limiter } = setup(2);
    const gateway = new Conn('gateway', 0, 1, true);
    const anonymous = new Conn('anonymous', 0, 50);
    limiter.admit(gateway);
    limiter.admit(anonymous);
    limiter.admit(new Conn('new', 0, 60));
    expect(anonymous.closed).toBe(true);
    expect(gateway.closed).toBe(false);
  });

  it('refuses a new connection when every one has requests in flight', () => {
    const { limiter, refusals } = setup(1);
    const busy = new Conn('busy', 2, 0);
    limiter.admit(busy);
    expect(limiter.admit(new Conn('new', 0, 1))).toBe(false);
    expect(refusals).toEqual(['connections']);
    expect(busy.closed).toBe(false);
    // Once it goes, there is room.
    limiter.release(busy);
    expect(limiter.admit(new Conn('new', 0, 2))).toBe(true);
  });

  it('closes every connection it holds on closeAll', () => {
    const { limiter } = setup(5);
    const all = [new Conn('a', 1, 0), new Conn('b', 0, 0)];
    for (const c of all) limiter.admit(c);
    limiter.closeAll();
    expect(all.every((c) => c.closed)).toBe(true);
    expect(limiter.size).toBe(0);
  });
});
