/**
 * glibc's heap trimming (docs/performance.md, "glibc gives the socket buffers back"): the
 * rate of one undici download stream (32 MiB responses from a loopback origin in this
 * process) in fresh processes, with glibc's default trim threshold and with the one
 * docs/operations.md has nodes started with, interleaved. A process whose heap frees the
 * socket buffers at its top gives the pages back to the kernel and faults them in again:
 * at random, some default processes run at a fraction of the others' rate.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/malloc-trim.bench.ts
 *
 * MT_PAIRS=N (default 8): processes of each kind; MT_SECONDS=S (default 3): each one's
 * download time. Pinned with `taskset` when there are two CPUs and it is installed (the
 * child on CPU 0, this process, the origin, on CPU 1). On a libc other than glibc the two
 * kinds are the same.
 */
import { execFileSync, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MALLOC_TUNABLE, onGlibc, withMallocTuning } from '../src/node/malloc-tuning.ts';
import { emit, note, stats } from './common.ts';
import { startOrigin } from './slow-clients-run.ts';

const CHILD = fileURLToPath(new URL('./malloc-trim-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PAIRS = Number(process.env.MT_PAIRS ?? 8);
const SECONDS = Number(process.env.MT_SECONDS ?? 3);
if (!Number.isInteger(PAIRS) || PAIRS < 1 || PAIRS > 50)
  throw new Error(`MT_PAIRS=${process.env.MT_PAIRS}: expected 1-50`);
if (!(SECONDS > 0 && SECONDS <= 30))
  throw new Error(`MT_SECONDS=${process.env.MT_SECONDS}: expected 0-30 s`);
/** A process below this share of the tuned median is counted slow. */
const SLOW_SHARE = 0.6;

/** Whether `taskset` runs here (util-linux): without it nothing is pinned. */
function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const pin = availableParallelism() >= 2 && hasTaskset();
if (pin) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

const BYTES = 32 * 1024 * 1024;
// The slow-clients bench's origin: `/fast?bytes=N` in 64 KiB writes, with backpressure.
const origin = await startOrigin('127.0.0.1');
const port = origin.port;

/** One fresh process: its rate in MB/s. */
function child(env: NodeJS.ProcessEnv): Promise<{ MBps: number; cores: number }> {
  const argv = [
    ...(pin ? ['-c', '0', process.execPath] : []),
    '--conditions=@relaymesh/source',
    '--import',
    'tsx',
    CHILD,
    JSON.stringify({ port, path: `/fast?bytes=${BYTES}`, seconds: SECONDS }),
  ];
  const p = spawn(pin ? 'taskset' : process.execPath, argv, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout.on('data', (d) => {
    out += d;
  });
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    const timer = setTimeout(() => p.kill('SIGKILL'), (SECONDS + 30) * 1000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`malloc-trim child exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}'));
    });
  });
}

const base = { ...process.env };
delete base.GLIBC_TUNABLES;
const tunedEnv = withMallocTuning(base);
const plain: number[] = [];
const tuned: number[] = [];
for (let i = 0; i < PAIRS; i++) {
  // Alternate which goes first, so neither kind always follows the other.
  const order = i % 2 === 0 ? (['plain', 'tuned'] as const) : (['tuned', 'plain'] as const);
  for (const kind of order) {
    const r = await child(kind === 'plain' ? base : tunedEnv);
    (kind === 'plain' ? plain : tuned).push(r.MBps);
    note(`${kind}: ${r.MBps.toFixed(0)} MB/s at ${r.cores.toFixed(2)} cores`);
  }
}
await origin.close();

const tunedMedian = stats(tuned).median;
const plainMedian = stats(plain).median;
const slow = (xs: number[]) => xs.filter((x) => x < SLOW_SHARE * tunedMedian).length;
emit({
  bench: 'malloc-trim',
  metric: `one undici download stream (32 MiB responses, loopback) per fresh process, with ${MALLOC_TUNABLE}`,
  value: tunedMedian,
  unit: 'MB/s',
  baseline: {
    name: "glibc's default trim threshold, same run (median)",
    value: plainMedian,
    unit: 'MB/s',
  },
  ratio: tunedMedian / plainMedian,
  target: `>= 1, and no tuned process below ${SLOW_SHARE} of the tuned median`,
  pass: tunedMedian >= plainMedian && slow(tuned) === 0,
  glibc: onGlibc(),
  pinned: pin,
  pairs: PAIRS,
  seconds: SECONDS,
  slowProcesses: { plain: slow(plain), tuned: slow(tuned) },
  plainMBps: plain.map((x) => Math.round(x)),
  tunedMBps: tuned.map((x) => Math.round(x)),
});
