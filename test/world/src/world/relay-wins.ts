import type { World } from './types.ts';

/** A pair where going through one relay region beats the direct link. */
export interface RelayWin {
  from: string;
  to: string;
  directMs: number;
  via: string;
  viaMs: number;
}

/**
 * The (entry, destination) pairs among `from` x `to` regions where the best one-hop relay
 * is at least `minGainMs` faster than the direct RTT: the paths a correct router must
 * send through a relay.
 */
export function relayWins(
  world: World,
  options: { from?: string[]; to?: string[]; minGainMs?: number } = {},
): RelayWin[] {
  const rtt = new Map(world.links.map((l) => [`${l.from}>${l.to}`, l.rttMs]));
  const at = (a: string, b: string) => rtt.get(`${a}>${b}`) ?? Number.POSITIVE_INFINITY;
  const regions = world.regions.map((r) => r.id);
  const minGain = options.minGainMs ?? 1;
  const wins: RelayWin[] = [];
  for (const to of options.to ?? regions) {
    for (const from of options.from ?? regions) {
      if (from === to) continue;
      const directMs = at(from, to);
      let best = { via: '', ms: Number.POSITIVE_INFINITY };
      for (const m of regions) {
        if (m === from || m === to) continue;
        const ms = at(from, m) + at(m, to);
        if (ms < best.ms) best = { via: m, ms };
      }
      if (best.ms < directMs - minGain)
        wins.push({ from, to, directMs, via: best.via, viaMs: Math.round(best.ms * 10) / 10 });
    }
  }
  return wins;
}
