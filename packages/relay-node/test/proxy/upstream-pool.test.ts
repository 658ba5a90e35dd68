import { DirectDialer } from '@relaymesh/shared';
import { describe, expect, it } from 'vitest';
import { UpstreamPool } from '../../src/proxy/exit/upstream-pool.ts';
import { parseOrigin } from '../../src/routing/origin-catalog.ts';

const origin = parseOrigin({
  name: 'o',
  hosts: ['o.example'],
  upstreams: ['http://10.0.0.1:80', 'http://10.0.0.2:80', 'tcp://10.0.0.3:22'],
});

function manualClock() {
  const c = {
    t: 1_000,
    now: () => c.t,
    setTimeout: () => 0 as unknown as NodeJS.Timeout,
    clearTimeout: () => {},
  };
  return c;
}

const http = (u: { address: { scheme: string } }) => u.address.scheme === 'http';

describe('UpstreamPool', () => {
  it('least-outstanding picks the least busy healthy upstream, ties round-robin', () => {
    const pool = new UpstreamPool({ origin, dialer: new DirectDialer(), clock: manualClock() });
    const [a, b] = pool.upstreams;
    const picks = new Set([
      pool.pick(http, new Set())?.address.host,
      pool.pick(http, new Set())?.address.host,
    ]);
    expect(picks).toEqual(new Set(['10.0.0.1', '10.0.0.2']));
    if (!a || !b) throw new Error('upstreams');
    a.outstanding = 3;
    for (let i = 0; i < 4; i++) expect(pool.pick(http, new Set())).toBe(b);
    expect(pool.pick(http, new Set([b]))).toBe(a);
    expect(pool.pick((u) => u.address.scheme === 'tcp', new Set())?.address.port).toBe(22);
  });

  it('round-robin ignores load', () => {
    const pool = new UpstreamPool({
      origin,
      dialer: new DirectDialer(),
      clock: manualClock(),
      balance: 'round-robin',
    });
    const [a] = pool.upstreams;
    if (!a) throw new Error('upstreams');
    a.outstanding = 100;
    const hosts = Array.from({ length: 4 }, () => pool.pick(http, new Set())?.address.host);
    expect(hosts.filter((h) => h === '10.0.0.1')).toHaveLength(2);
  });

  it('passive marking: maxFails consecutive failures take an upstream out for failTimeoutMs', () => {
    const clock = manualClock();
    const pool = new UpstreamPool({
      origin,
      dialer: new DirectDialer(),
      clock,
      maxFails: 2,
      failTimeoutMs: 5_000,
    });
    const [a, b] = pool.upstreams;
    if (!a || !b) throw new Error('upstreams');
    pool.reportFailure(a, 'refused');
    pool.reportSuccess(a);
    pool.reportFailure(a, 'refused');
    expect(pool.isHealthy(a)).toBe(true); // not consecutive
    pool.reportFailure(a, 'refused');
    expect(pool.isHealthy(a)).toBe(false);
    for (let i = 0; i < 4; i++) expect(pool.pick(http, new Set())).toBe(b);
    clock.t += 5_001;
    expect(pool.isHealthy(a)).toBe(true);
  });

  it('active marking wins until a check passes; with every upstream down it still tries them', () => {
    const pool = new UpstreamPool({ origin, dialer: new DirectDialer(), clock: manualClock() });
    const [a, b] = pool.upstreams;
    if (!a || !b) throw new Error('upstreams');
    pool.setActive(a, false, 'status 500');
    expect(pool.pick(http, new Set())).toBe(b);
    pool.setActive(b, false, 'status 500');
    expect(pool.pick(http, new Set())).toBeDefined();
    pool.setActive(a, true, 'status 200');
    expect(pool.pick(http, new Set())).toBe(a);
  });
});
