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
