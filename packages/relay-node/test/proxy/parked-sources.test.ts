import { describe, expect, it } from 'vitest';
import { ParkedSources } from '../../src/proxy/http/parked-sources.ts';

describe('parked responses per client address', () => {
  it('counts per address, lists the most first and forgets an address with none', () => {
    const p = new ParkedSources({ warnAt: 0 });
    for (let i = 0; i < 3; i++) p.add('10.0.0.1');
    p.add('10.0.0.2');
    p.add('::1');
    p.add('::1');
    expect(p.total).toBe(6);
    expect(p.sources).toBe(3);
    expect(p.top(2)).toEqual([
      { source: '10.0.0.1', parked: 3 },
      { source: '::1', parked: 2 },
    ]);
    // The slow lane's test: who holds at least n (no order promised).
    expect(p.atLeast(2).sort((a, b) => a.parked - b.parked)).toEqual([
      { source: '::1', parked: 2 },
      { source: '10.0.0.1', parked: 3 },
    ]);
    expect(p.atLeast(4)).toEqual([]);
    p.delete('10.0.0.2');
    p.delete('10.0.0.2'); // not parked any more: ignored, never negative
    p.delete('192.0.2.9'); // never parked
    expect(p.of('10.0.0.2')).toBe(0);
    expect(p.sources).toBe(2);
    expect(p.total).toBe(5);
    for (let i = 0; i < 3; i++) p.delete('10.0.0.1');
    expect(p.top(10)).toEqual([{ source: '::1', parked: 2 }]);
  });

  it('warns at the threshold and at each doubling, once each, and again only after falling below half', () => {
    const seen: Array<{ source: string; parked: number }> = [];
    const p = new ParkedSources({ warnAt: 4, onCrowded: (e) => seen.push(e) });
    for (let i = 0; i < 20; i++) p.add('a');
    expect(seen).toEqual([
      { source: 'a', parked: 4 },
      { source: 'a', parked: 8 },
      { source: 'a', parked: 16 },
    ]);
    // Down to 2 (not below half of 4) and back to 16: no new line.
    for (let i = 0; i < 18; i++) p.delete('a');
    for (let i = 0; i < 14; i++) p.add('a');
    expect(seen).toHaveLength(3);
    // Down to 1 (below half): the threshold fires again at 4.
    for (let i = 0; i < 15; i++) p.delete('a');
    expect(p.of('a')).toBe(1);
    for (let i = 0; i < 3; i++) p.add('a');
    expect(seen.at(-1)).toEqual({ source: 'a', parked: 4 });
    expect(seen).toHaveLength(4);
    // Another address has its own levels.
    for (let i = 0; i < 4; i++) p.add('b');
    expect(seen.at(-1)).toEqual({ source: 'b', parked: 4 });
  });

  it('never warns with warnAt 0', () => {
    const seen: unknown[] = [];
    const p = new ParkedSources({ warnAt: 0, onCrowded: (e) => seen.push(e) });
    for (let i = 0; i < 1000; i++) p.add('a');
    expect(seen).toEqual([]);
  });
});
