import { performance } from 'node:perf_hooks';
import { type Dialer, RelayError } from '@relaymesh/shared';

/** An entry node clients can use: its id and advertised HTTP URL. */
export interface EntryCandidate {
  id: string;
  http: string;
}

/** One line of `relaymesh nearest --json`. */
export interface NearestEntry {
  id: string;
  http: string;
  /** Median TCP connect time in ms (0.1 ms), null when unreachable. */
  rttMs: number | null;
  /** Why the entry is unreachable. */
  error?: string;
}

export interface MeasureNearestOptions {
  /** Every connect goes through it (so through the egress proxy when there is one). */
  dialer: Dialer;
  /** Connects per entry; the median counts. @default 3 */
  samples?: number;
  /** Per connect. @default 2000 */
  timeoutMs?: number;
}

/** host and port of `http://HOST:PORT`. @throws RelayError ERR_CONFIG_INVALID */
function target(http: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(http);
  } catch {
    throw new RelayError('ERR_CONFIG_INVALID', `${JSON.stringify(http)} is not a URL`);
  }
  if (u.protocol !== 'http:') {
    throw new RelayError('ERR_CONFIG_INVALID', `${http} is not an http:// URL`);
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? 80 : Number(u.port) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function measureOne(c: EntryCandidate, o: MeasureNearestOptions): Promise<NearestEntry> {
  const samples: number[] = [];
  try {
    const t = target(c.http);
    // Sequential: parallel connects to one entry would measure each other's queueing.
    for (let i = 0; i < Math.max(1, o.samples ?? 3); i++) {
      const started = performance.now();
      const socket = await o.dialer.dial(t, { timeoutMs: o.timeoutMs ?? 2000 });
      samples.push(performance.now() - started);
      socket.destroy();
    }
    return { id: c.id, http: c.http, rttMs: Math.round(median(samples) * 10) / 10 };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { id: c.id, http: c.http, rttMs: null, error: message };
  }
}

/**
 * Measures the TCP connect time to every candidate's HTTP address (median of `samples`
 * connects through the dialer) and returns them fastest first, unreachable ones last in
 * their input order. Entries are measured concurrently; never rejects.
 */
export async function measureNearest(
  candidates: readonly EntryCandidate[],
  options: MeasureNearestOptions,
): Promise<NearestEntry[]> {
  const results = await Promise.all(candidates.map((c) => measureOne(c, options)));
  const up = results.filter((r) => r.rttMs !== null);
  const down = results.filter((r) => r.rttMs === null);
  up.sort((a, b) => (a.rttMs as number) - (b.rttMs as number) || a.id.localeCompare(b.id));
  return [...up, ...down];
}
