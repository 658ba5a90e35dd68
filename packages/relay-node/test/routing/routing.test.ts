import { describe, expect, it } from 'vitest';
import { OriginTable, parseUpstream } from '../../src/routing/origin-catalog.ts';
import { RouteTable } from '../../src/routing/route-table.ts';

describe('RouteTable', () => {
  const clock = {
    t: 0,
    now: () => clock.t,
    setTimeout: () => 0 as unknown as NodeJS.Timeout,
    clearTimeout: () => {},
  };

  it('keeps only this node routes, primary first, alternates deduplicated', () => {
    const t = new RouteTable({ nodeId: 'bj', clock });
    expect(t.pathsFor('files')).toEqual([]);
    t.update([
      {
        from: 'bj',
        origin: 'files',
        path: ['bj', 'tk'],
        rttMs: 40,
        alternates: [
          { path: ['bj', 'hk', 'tk'], rttMs: 60 },
          { path: ['bj', 'tk'], rttMs: 40 },
        ],
      },
      { from: 'sh', origin: 'files', path: ['sh', 'tk'], rttMs: 30, alternates: [] },
    ]);
    expect(t.pathsFor('files')).toEqual([
      ['bj', 'tk'],
      ['bj', 'hk', 'tk'],
    ]);
    expect(t.version).toBe(1);
  });

  it('moves paths whose first hop failed to the back until the mark expires', () => {
    const t = new RouteTable({ nodeId: 'bj', clock, peerDownMs: 1000 });
    t.update([
      {
        from: 'bj',
        origin: 'o',
        path: ['bj', 'tk'],
        rttMs: 1,
        alternates: [{ path: ['bj', 'hk', 'tk'], rttMs: 2 }],
      },
    ]);
    t.markPeerDown('tk');
    expect(t.pathsFor('o')[0]).toEqual(['bj', 'hk', 'tk']);
    clock.t += 1001;
    expect(t.pathsFor('o')[0]).toEqual(['bj', 'tk']);
  });
});

describe('RouteTable local failover on tunnel deaths', () => {
  const clock = {
    t: 0,
    now: () => clock.t,
    setTimeout: () => 0 as unknown as NodeJS.Timeout,
    clearTimeout: () => {},
  };
  const table = () => {
    const t = new RouteTable({ nodeId: 'e', clock, peerDownMs: 1000 });
    t.update([
      {
        from: 'e',
        origin: 'o',
        path: ['e', 'r', 'x'],
        rttMs: 10,
        alternates: [
          { path: ['e', 'x'], rttMs: 12 },
          { path: ['e', 'q', 'y'], rttMs: 14 },
        ],
      },
    ]);
    return t;
  };

  it('a dead relay (first hop) sends new streams over the alternates until a tunnel is back', () => {
    const t = table();
    t.markTunnelDown('r');
    clock.t += 60_000; // no expiry: only a live tunnel clears it
    expect(t.pathsFor('o')).toEqual([
      ['e', 'x'],
      ['e', 'q', 'y'],
      ['e', 'r', 'x'],
    ]);
    expect(t.downPeers).toEqual(['r']);
    t.markPeerUp('r');
    expect(t.pathsFor('o')[0]).toEqual(['e', 'r', 'x']);
    expect(t.downPeers).toEqual([]);
  });

  it('a dead exit demotes every path through it; a later-node mark ranks before a first-hop mark', () => {
    const t = table();
    t.markTunnelDown('x');
    expect(t.pathsFor('o')).toEqual([
      ['e', 'q', 'y'],
      ['e', 'r', 'x'],
      ['e', 'x'],
    ]);
    // Everything marked: still tried, best rank first, coordinator order within a rank.
    t.markTunnelDown('q');
    expect(t.pathsFor('o')).toEqual([
      ['e', 'r', 'x'],
      ['e', 'x'],
      ['e', 'q', 'y'],
    ]);
  });

  it('a new table from the coordinator keeps the marks (the coordinator may not know yet)', () => {
    const t = table();
    t.markTunnelDown('r');
    t.update(
      [
        {
          from: 'e',
          origin: 'o',
          path: ['e', 'r', 'x'],
          rttMs: 10,
          alternates: [{ path: ['e', 'x'], rttMs: 12 }],
        },
      ],
      7,
    );
    expect(t.version).toBe(7);
    expect(t.pathsFor('o')[0]).toEqual(['e', 'x']);
  });
});

describe('OriginTable', () => {
  it('looks origins up by name and by host, case-insensitively', () => {
    const t = new OriginTable([
      {
        name: 'files',
        hosts: ['Files.Example'],
        upstreams: ['http://10.0.0.1:8080', 'tcp://10.0.0.2:22'],
      },
    ]);
    expect(t.byHost('files.example')?.name).toBe('files');
    expect(t.byHost('FILES.EXAMPLE')?.name).toBe('files');
    expect(t.byName('files')?.upstreams.map((u) => u.url)).toEqual([
      'http://10.0.0.1:8080',
      'tcp://10.0.0.2:22',
    ]);
    expect(t.byHost('other.example')).toBeUndefined();
  });

  it('rejects bad config atomically with ERR_CONFIG_INVALID', () => {
    const t = new OriginTable([{ name: 'a', hosts: ['a.example'], upstreams: ['http://h:1'] }]);
    expect(() =>
      t.replace([{ name: 'b', hosts: ['a.example'], upstreams: ['ftp://h:1'] }]),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    expect(t.byName('a')).toBeDefined();
    expect(() => parseUpstream('tcp://h')).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
    expect(parseUpstream('http://h')).toMatchObject({ scheme: 'http', host: 'h', port: 80 });
    expect(() =>
      t.replace([
        { name: 'x', hosts: ['dup.example'], upstreams: ['http://h:1'] },
        { name: 'y', hosts: ['dup.example'], upstreams: ['http://h:2'] },
      ]),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
  });
});
