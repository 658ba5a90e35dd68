import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Issue 6, bounded memory under abuse, at a tenth of the benchmark's scale: the benchmark
// itself (packages/relay-node/bench/slow-clients.bench.ts) with 1,000 slow clients (1 B/s
// each, their own process) on an entry that is its own exit (its own process, RSS from
// /proc). The entry's RSS growth stays under the bound documented in docs/reliability.md
// ("Slow clients": 32 MiB + 320 KiB per slow client), every slow client gets its
// response started, and a normal client's download completes intact meanwhile.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH = 'packages/relay-node/bench/slow-clients.bench.ts';
const COUNT = 1000;
const BOUND_FIXED_MIB = 32;
const BOUND_KIB_PER_CLIENT = 320;

interface BenchLine {
  bench: string;
  value: number;
  pass: boolean;
  [k: string]: unknown;
}

function runBench(count: number): Promise<BenchLine[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@relaymesh/source', '--import', 'tsx', BENCH],
      {
        cwd: ROOT,
        // No steady-state measurement (20 s later): the suite's time.
        env: {
          ...process.env,
          SLOW_CLIENTS: String(count),
          SLOW_NORMAL_MIB: '16',
          SLOW_STEADY_MS: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-5000);
    });
    // SIGTERM first: the bench then deletes the network namespaces it created.
    const timer = setTimeout(() => child.kill('SIGTERM'), 105_000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      clearTimeout(kill);
      if (code !== 0) return reject(new Error(`bench exited ${code}: ${err}`));
      resolve(
        out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as BenchLine),
      );
    });
  });
}

describe('slow clients', () => {
  it('1,000 clients reading 1 B/s: entry memory bounded, a normal download completes', {
    timeout: 120_000,
  }, async () => {
    const lines = await runBench(COUNT);
    const rss = lines.find((l) => l.bench === 'slow-clients-entry-rss');
    const normal = lines.find((l) => l.bench === 'slow-clients-normal-rate');
    expect(rss?.connected).toBe(COUNT);
    expect(rss?.answered).toBe(COUNT);
    expect(rss?.closedEarly).toBe(0);
    expect(rss?.statuses).toEqual({ '200': COUNT });
    expect(rss?.value).toBeLessThan(BOUND_FIXED_MIB + (COUNT * BOUND_KIB_PER_CLIENT) / 1024);
    // The normal download completed intact (the bench exits non-zero otherwise: wrong size,
    // status, or not within 60 s). Its rate is not asserted: on two cores shared with other
    // suites it swings from 0.14x to 1.6x of the baseline run to run; the bench reports it.
    expect(normal?.value).toBeGreaterThan(0);
  });
});
