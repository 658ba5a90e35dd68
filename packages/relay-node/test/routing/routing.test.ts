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

describe('copies of the tables (the slow lane keeps one)', () => {
  it('a RouteTable snapshot loads into another: same paths, version and dead tunnels; changes are announced', () => {
    const a = new RouteTable({ nodeId: 'en' });
    let changes = 0;
    a.onChange(() => changes++);
    a.update(
      [
        {
          from: 'en',
          origin: 'o',
          path: ['en', 'r1', 'ex'],
          rttMs: 5,
          alternates: [{ path: ['en', 'r2', 'ex'], rttMs: 9 }],
        },
      ],
      7,
    );
    a.markTunnelDown('r1');
    a.markTunnelDown('r1'); // already down: no change
    a.markPeerDown('r2'); // a local hint: not announced, not copied
    expect(changes).toBe(2);
    const b = new RouteTable({ nodeId: 'en' });
    b.load(a.snapshot());
    expect(b.version).toBe(7);
    expect(b.tunnelIsDown('r1')).toBe(true);
    expect(b.pathsFor('o')).toEqual([
      ['en', 'r2', 'ex'],
      ['en', 'r1', 'ex'],
    ]);
    a.markPeerUp('r1');
    expect(changes).toBe(3);
    b.load(a.snapshot());
    expect(b.tunnelIsDown('r1')).toBe(false);
    expect(b.pathsFor('o')[0]).toEqual(['en', 'r1', 'ex']);
  });

  it("an OriginTable takes another one's parsed origins, and announces each replace", () => {
    const a = new OriginTable([
      { name: 'o', hosts: ['o.test'], upstreams: ['http://127.0.0.1:1'] },
    ]);
    const b = new OriginTable();
    let changes = 0;
    b.onChange(() => changes++);
    b.replaceParsed(a.origins);
    expect(b.byHost('O.TEST')?.upstreams[0]?.port).toBe(1);
    expect(changes).toBe(1);
    expect(() => b.replaceParsed([...a.origins, ...a.origins])).toThrow(/declared twice/);
    expect(changes).toBe(1);
    expect(b.byName('o')).toBeDefined();
  });
});
