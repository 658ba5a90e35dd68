import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DATA_DIR,
  linkBetween,
  loadLatencyMatrix,
  loadWorld,
  relayWins,
  resolveWorld,
} from '../src/index.ts';

const matrix = loadLatencyMatrix();

describe('latency matrix', () => {
  it('keeps its provenance header and reads the directed rows', () => {
    const text = readFileSync(path.join(DATA_DIR, 'latency-matrix.csv'), 'utf8');
    expect(text.startsWith('# Inter-region round-trip latency matrix')).toBe(true);
    expect(text).toContain('CloudPing.co');
    expect(matrix.get('ap-northeast-1', 'ap-east-1')).toBe(52.0);
    expect(matrix.get('ap-east-1', 'ap-northeast-1')).toBe(51.7);
    expect(matrix.get('cn-beijing', 'ap-east-1')).toBe(51.0);
    expect(matrix.get('ap-east-1', 'cn-beijing')).toBeUndefined();
  });
});

describe('seed world', () => {
  const world = loadWorld('seed');

  it('has the story: Chengdu client, three nodes, a file origin in Tokyo', () => {
    expect(world.regions.map((r) => r.id)).toEqual([
      'cn-chengdu',
      'cn-north-1',
      'ap-east-1',
      'ap-northeast-1',
    ]);
    expect(world.nodes.map((n) => n.region)).toEqual(['cn-north-1', 'ap-east-1', 'ap-northeast-1']);
    expect(world.origins.find((o) => o.kind === 'file')?.region).toBe('ap-northeast-1');
    expect(world.clients).toEqual([{ id: 'chengdu-1', region: 'cn-chengdu' }]);
    expect(world.links).toHaveLength(16);
  });

  it('models the lossy direct path as ~30 KB/s and the relay legs as fast', () => {
    const direct = linkBetween(world, 'cn-chengdu', 'ap-northeast-1');
    expect(direct.rttMs).toBe(176);
    expect(direct.bandwidthBps / 8).toBeGreaterThan(28_000);
    expect(direct.bandwidthBps / 8).toBeLessThan(32_000);
    expect(direct.jitter.kind).toBe('lognormal');
    expect(linkBetween(world, 'ap-northeast-1', 'cn-chengdu').bandwidthBps).toBe(
      direct.bandwidthBps,
    );
    const domestic = linkBetween(world, 'cn-chengdu', 'cn-north-1');
    expect([domestic.rttMs, domestic.bandwidthBps]).toEqual([30, 100e6]);
    expect(linkBetween(world, 'cn-north-1', 'ap-northeast-1').rttMs).toBe(84);
  });

  it('fills the rest from the matrix, symmetric for cn-* rows, 2 ms inside a region', () => {
    expect(linkBetween(world, 'cn-north-1', 'ap-east-1')).toMatchObject({
      rttMs: 51,
      source: 'matrix',
    });
    expect(linkBetween(world, 'ap-east-1', 'cn-north-1')).toMatchObject({
      rttMs: 51,
      source: 'matrix-reverse',
    });
    expect(linkBetween(world, 'ap-east-1', 'ap-northeast-1').rttMs).toBe(51.7);
    expect(linkBetween(world, 'cn-north-1', 'cn-north-1')).toMatchObject({
      rttMs: 2,
      source: 'intra-default',
    });
    expect(linkBetween(world, 'ap-northeast-1', 'ap-northeast-1').rttMs).toBe(2.5);
  });

  it('makes Beijing the better way from Chengdu to Tokyo', () => {
    const wins = relayWins(world, { from: ['cn-chengdu'], to: ['ap-northeast-1'] });
    expect(wins).toEqual([
      { from: 'cn-chengdu', to: 'ap-northeast-1', directMs: 176, via: 'cn-north-1', viaMs: 114 },
    ]);
  });
});

describe('aws12 world', () => {
  const world = loadWorld('aws12');

  it('has twelve regions with one node each and origins in three', () => {
    expect(world.regions).toHaveLength(12);
    expect(new Set(world.nodes.map((n) => n.region)).size).toBe(12);
    expect(new Set(world.origins.map((o) => o.region)).size).toBe(3);
    expect(world.links).toHaveLength(144);
    expect(world.links.every((l) => l.source !== 'override')).toBe(true);
  });

  it('has the relay-beats-direct pairs its file lists (19 with a gain over 5 ms)', () => {
    const wins = relayWins(world, { to: world.origins.map((o) => o.region), minGainMs: 5 });
    expect(wins).toHaveLength(19);
    expect(wins).toContainEqual({
      from: 'me-south-1',
      to: 'ca-west-1',
      directMs: 253.8,
      via: 'us-east-1',
      viaMs: 211.3,
    });
    const listed = readFileSync(world.file, 'utf8');
    for (const w of wins) expect(listed).toContain(`${w.from}`);
  });
});

describe('world file errors', () => {
  const base = {
    regions: [{ id: 'ap-northeast-1' }, { id: 'mars-1', description: 'not in the matrix' }],
  };

  it('names a region that is neither in the matrix nor overridden', () => {
    expect(() => resolveWorld(base, 'x.yaml', matrix)).toThrow(/mars-1.*latency-matrix\.csv/);
  });

  it('accepts the same region once every pair with it is overridden', () => {
    const w = resolveWorld(
      { ...base, links: [{ from: 'mars-1', to: 'ap-northeast-1', rttMs: 1200, bandwidthMbps: 1 }] },
      'x.yaml',
      matrix,
    );
    expect(linkBetween(w, 'ap-northeast-1', 'mars-1')).toMatchObject({
      rttMs: 1200,
      bandwidthBps: 1e6,
    });
    expect(linkBetween(w, 'mars-1', 'mars-1').rttMs).toBe(2);
  });

  it('rejects unknown regions, duplicate ids and bad kinds with ERR_WORLD_CONFIG', () => {
    const bad = [
      { regions: [{ id: 'us-east-1' }], nodes: [{ id: 'n', region: 'nowhere' }] },
      { regions: [{ id: 'us-east-1' }, { id: 'us-east-1' }] },
      {
        regions: [{ id: 'us-east-1' }],
        origins: [{ name: 'o', region: 'us-east-1', kind: 'ftp' }],
      },
      {
        regions: [{ id: 'us-east-1' }],
        links: [{ from: 'us-east-1', to: 'us-east-1', rttMs: -1 }],
      },
      {
        regions: [{ id: 'us-east-1' }],
        links: [{ from: 'us-east-1', to: 'us-east-1', bandwidthMbps: 0 }],
      },
      'not an object',
    ];
    for (const doc of bad) {
      expect(() => resolveWorld(doc, 'x.yaml', matrix)).toThrow(
        expect.objectContaining({ code: 'ERR_WORLD_CONFIG' }),
      );
    }
  });

  it('loads JSON world files by path and reports missing files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'world-'));
    try {
      const file = path.join(dir, 'tiny.json');
      writeFileSync(
        file,
        JSON.stringify({ name: 'tiny', regions: [{ id: 'us-east-1' }, { id: 'us-west-2' }] }),
      );
      const w = loadWorld(file);
      expect(w.name).toBe('tiny');
      expect(linkBetween(w, 'us-east-1', 'us-west-2').rttMs).toBe(64.3);
      expect(() => loadWorld(path.join(dir, 'missing.yaml'))).toThrow(/no world file/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
