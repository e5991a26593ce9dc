import { AuthorityMemo } from './authority-memo.js';

describe('AuthorityMemo', () => {
  it('parses clusterset authorities, with and without a port, into service and route keys', () => {
    const memo = new AuthorityMemo();
    expect(memo.parse('payments.shop.svc.clusterset.local:8080')).toEqual({ namespace: 'shop', name: 'payments', port: 8080, key: 'shop/payments', routeKey: 'shop/payments:8080' });
    expect(memo.parse('payments.shop.svc.clusterset.local')).toEqual({ namespace: 'shop', name: 'payments', port: undefined, key: 'shop/payments', routeKey: 'shop/payments:' });
  });

  it('answers the same value for the same authority, reads the short form, and undefined for what is no service name', () => {
    const memo = new AuthorityMemo();
    const first = memo.parse('greeter.shop.svc.clusterset.local:9090');
    expect(memo.parse('greeter.shop.svc.clusterset.local:9090')).toBe(first);
    expect(memo.parse('greeter.shop:9090')?.routeKey).toBe('shop/greeter:9090');
    expect(memo.parse('www.example.com')).toBeUndefined();
    expect(memo.parse('www.example.com')).toBeUndefined();
    expect(memo.parse('greeter.shop:http')).toBeUndefined();
  });

  it('stays bounded under random hosts and still parses afterwards', () => {
    const memo = new AuthorityMemo();
    for (let i = 0; i < 5000; i++) memo.parse(`random-${i}.example`);
    expect(memo.parse('payments.shop.svc.clusterset.local:8080')?.key).toBe('shop/payments');
  });
});
