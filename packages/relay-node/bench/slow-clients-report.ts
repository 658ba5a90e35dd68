/**
 * Summarises saved slow-clients bench runs (their stdout, one JSON line per result), one
 * line per run: the established stream's verdict (baseline, windows below 0.5 of it, median
 * and worst window), then, between FROM and TO seconds after the load's start, its windows
 * split by whether they began in a second in which the entry's threads other than its main
 * one ran ≥ 0.1 s (V8's helpers marking) or not (count, median ratio, windows below 0.5),
 * and per second of each kind the main thread's run and CPU-wait seconds, the helpers' run
 * seconds and the admissions (docs/reliability.md, session 14). The timeline's own per-second
 * stream rate is not used: each window moves a fixed 5 x 32 MiB and the bench's bookkeeping
 * between windows (~0.6 s) sets how many fall in a second.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/slow-clients-report.ts [--from 15] [--to 80] RUN.out...
 *
 * Needs runs with the timeline's schedstat columns (since session 14); prints JSON lines.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { from: { type: 'string', default: '15' }, to: { type: 'string', default: '80' } },
  allowPositionals: true,
});
const from = Number(values.from);
const to = Number(values.to);
if (!(from >= 0) || !(to > from))
  throw new Error(`--from ${values.from} --to ${values.to}: expected 0 <= from < to`);
if (positionals.length === 0)
  throw new Error('usage: slow-clients-report.ts [--from S] [--to S] RUN.out...');

/** The helpers' run s/s from which a second counts as a marking second. */
const MARKING_HELPERS_S = 0.1;

interface Established {
  baseline: { value: number };
  series: number[][];
  timelineColumns: string[];
  timeline: number[][];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : Number.NaN);
const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length ? (s[Math.floor(s.length / 2)] as number) : Number.NaN;
};
const r2 = (x: number) => Number(x.toFixed(2));

for (const file of positionals) {
  try {
    report(file);
  } catch (err) {
    // One unreadable or older run does not stop the others.
    console.log(JSON.stringify({ file, error: (err as Error).message }));
  }
}

function report(file: string): void {
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { bench?: string });
  const e = lines.find((l) => l.bench?.startsWith('slow-clients-normal-rate-established')) as
    | (Established & { bench: string })
    | undefined;
  if (!e) {
    throw new Error('no established normal-rate line (SLOW_NORMAL_MODE=established)');
  }
  const col = (name: string) => {
    const i = e.timelineColumns.indexOf(name);
    if (i < 0) throw new Error(`no timeline column "${name}" (a run from before session 14?)`);
    return i;
  };
  const c = {
    adm: col('entry admitted'),
    entry: col('entry cores'),
    host: col('host busy cores'),
    mainRun: col('entry main thread run s/s'),
    mainWait: col('entry main thread CPU wait s/s'),
    helpers: col('entry other threads run s/s'),
  };
  const base = e.baseline.value;
  const ratios = e.series.map((w) => w[1] ?? 0);
  const inSpan = (t: number) => t >= from && t <= to;
  const rows = e.timeline.filter((r) => inSpan(r[0] ?? 0));
  const marking = (r: number[]) => (r[c.helpers] ?? 0) >= MARKING_HELPERS_S;
  // A timeline row stands for the second that ends at its time stamp.
  const rowAt = (t: number) => e.timeline.find((r) => (r[0] ?? 0) - 1 < t && t <= (r[0] ?? 0));
  const windows = e.series.filter((w) => inSpan(w[0] ?? 0));
  const windowsOf = (inMarking: boolean) => {
    const rs = windows
      .filter((w) => {
        const row = rowAt(w[0] ?? 0);
        return row !== undefined && marking(row) === inMarking;
      })
      .map((w) => w[1] ?? 0);
    return { n: rs.length, medianRatio: r2(median(rs)), below05: rs.filter((x) => x < 0.5).length };
  };
  const seconds = (rs: number[][]) => ({
    n: rs.length,
    mainRun: r2(mean(rs.map((r) => r[c.mainRun] ?? 0))),
    mainWait: r2(mean(rs.map((r) => r[c.mainWait] ?? 0))),
    helpersRun: r2(mean(rs.map((r) => r[c.helpers] ?? 0))),
    admittedPerS: Math.round(mean(rs.map((r) => r[c.adm] ?? 0))),
  });
  console.log(
    JSON.stringify({
      file,
      baselineMBps: Math.round(base),
      windows: ratios.length,
      below05: ratios.filter((x) => x < 0.5).length,
      medianMBps: Math.round(median(ratios) * base),
      worstMBps: Math.round(Math.min(...ratios) * base),
      span: [from, to],
      windowsInMarkingSeconds: windowsOf(true),
      otherWindows: windowsOf(false),
      markingSeconds: seconds(rows.filter(marking)),
      otherSeconds: seconds(rows.filter((r) => !marking(r))),
      entryCores: r2(mean(rows.map((r) => r[c.entry] ?? 0))),
      hostBusyCores: r2(mean(rows.map((r) => r[c.host] ?? 0))),
    }),
  );
}
