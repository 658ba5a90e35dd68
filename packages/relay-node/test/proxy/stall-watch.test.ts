import { afterEach, describe, expect, it } from 'vitest';
import { type StalledResponse, StallWatch } from '../../src/proxy/http/stall-watch.ts';

// The entry's stall watch (docs/reliability.md, "Slow clients"): stalled responses are parked
// at parkAfterMs, oldest first; once more than maxHeld are stalled, those whose client has
// not read yet are parked after parkAfterMs / 100. Stall times are set in the past, so
// every decision here is made when the stall is added, not by a timer.

const watches: Array<{ w: StallWatch; all: StalledResponse[] }> = [];

afterEach(() => {
  // Ends every stall still watched, which also clears the watch's timer.
  for (const { w, all } of watches.splice(0)) for (const r of all) w.delete(r);
});

function setup(parkAfterMs: number, maxHeld: number) {
  const w = new StallWatch({ parkAfterMs, maxHeld });
  const all: StalledResponse[] = [];
  const parked: string[] = [];
  watches.push({ w, all });
  /** A stall that began `agoMs` ago. */
  const stall = (name: string, agoMs: number, hasRead = false) => {
    const r = { at: performance.now() - agoMs, hasRead, park: () => parked.push(name) };
    all.push(r);
    w.add(r);
    return r;
  };
  return { w, parked, stall };
}

describe('StallWatch', () => {
  it('parks a stall at parkAfterMs and not before, while within the budget', () => {
    const { w, parked, stall } = setup(5000, 4);
    stall('old', 6000);
    stall('fresh', 1000);
    expect(parked).toEqual(['old']);
    expect(w.size).toBe(1);
    expect(w.parked).toBe(1);
    expect(w.parkedEarly).toBe(0);
  });

  it('over the budget, parks early the longest stalled whose client has not read, down to the budget', () => {
    const { w, parked, stall } = setup(5000, 2);
    stall('a', 3000);
    stall('b', 2000);
    expect(parked).toEqual([]);
    stall('c', 1000);
    // Three held, two allowed: the longest stalled (stalled 3 s > 5000 / 100 ms) goes.
    expect(parked).toEqual(['a']);
    stall('d', 10); // stalled 10 ms: not yet due for an early park
    expect(parked).toEqual(['a', 'b']);
    expect(w.size).toBe(2);
    expect(w.parkedEarly).toBe(2);
  });

  it('over the budget, parks a response whose client has read only once stalled for parkAfterMs / 10', () => {
    const { w, parked, stall } = setup(5000, 1);
    stall('r1', 400, true);
    stall('r2', 300, true);
    expect(parked).toEqual([]); // stalled less than 500 ms
    // An unread one over the budget is parked after 50 ms; the read ones stay.
    stall('u', 100);
    expect(parked).toEqual(['u']);
    stall('r3', 600, true); // out of order on purpose: checked after r1 and r2, not yet due
    expect(parked).toEqual(['u']);
    expect(w.size).toBe(3);
  });

  it('a stall that ended (deleted) is not parked', () => {
    const { w, parked, stall } = setup(5000, 0);
    const r = stall('x', 10);
    w.delete(r);
    stall('y', 1000);
    expect(parked).toEqual(['y']);
    expect(w.size).toBe(0);
  });

  it('parks on its timer when nothing else happens', async () => {
    const { parked, stall } = setup(20, 8);
    stall('t', 0);
    expect(parked).toEqual([]);
    for (let i = 0; i < 200 && parked.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(parked).toEqual(['t']);
  });
});
