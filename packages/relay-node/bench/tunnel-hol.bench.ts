/**
 * Issue 2, benchmark 4: head-of-line blocking. Sequential 1 KiB request/response round
 * trips on one mux stream (opened once, kept for the whole phase) over a real WebSocket
 * tunnel between this process (dialer) and a child process (listener, bench/tunnel-child.ts
 * in "echo" mode), on loopback. Phase "idle": nothing else on the tunnel. Phase "bulk":
 * one more stream on the same tunnel writes 64 KiB chunks as fast as backpressure allows
 * (the child discards them), in the same direction as the requests. Each phase lasts
 * PHASE_MS or MAX_RTTS round trips; the phases alternate REPS times and the figures are
 * the medians of the per-phase p50/p99. Baseline: the idle phase's p99.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/tunnel-hol.bench.ts [reps] [phaseMs]
 */
import { fileURLToPath } from 'node:url';
import { type MuxStream, type Tunnel, TunnelDialer } from '../src/index.ts';
import { blast, emit, note, quantile, sleep, startChild, stats, TOKEN, within } from './common.ts';

const REPS = Number(process.argv[2] ?? 3);
const PHASE_MS = Number(process.argv[3] ?? 3000);
const MAX_RTTS = 100_000;
const REQUEST = 1024;
const CHILD = fileURLToPath(new URL('./tunnel-child.ts', import.meta.url));

/** Round-trip times (ms) of sequential 1 KiB echoes on `s` for `ms`. */
async function echoes(s: MuxStream, ms: number): Promise<number[]> {
  const req = Buffer.alloc(REQUEST, 0x72);
  const rtts: number[] = [];
  let got = 0;
  let wake: (() => void) | undefined;
  const onData = (c: Buffer) => {
    got += c.length;
    if (got >= REQUEST) wake?.();
  };
  s.on('data', onData);
  const stopAt = performance.now() + ms;
  try {
    while (performance.now() < stopAt && rtts.length < MAX_RTTS) {
      got = 0;
      const answered = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const t0 = performance.now();
      s.write(req);
      await within(answered, 10_000, 'echo');
      rtts.push(performance.now() - t0);
      if (got !== REQUEST) throw new Error(`echo returned ${got} bytes`);
    }
  } finally {
    s.off('data', onData);
  }
  return rtts;
}

function percentiles(rtts: number[]): { p50: number; p99: number; n: number } {
  const sorted = [...rtts].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), n: sorted.length };
}

async function main(): Promise<void> {
  const child = await startChild(CHILD, [JSON.stringify({ mode: 'echo' })]);
  let tunnel: Tunnel | undefined;
  try {
    tunnel = await new TunnelDialer({ nodeId: 'hol-dialer', token: TOKEN }).dial(
      child.ready.url as string,
    );
    const req = tunnel.session.open();
    req.on('error', () => {});
    req.write('E');
    await echoes(req, 500); // warm-up
    const idle: Array<{ p50: number; p99: number; n: number }> = [];
    const bulk: Array<{ p50: number; p99: number; n: number }> = [];
    let bulkMBs = 0;
    for (let i = 0; i < REPS; i++) {
      idle.push(percentiles(await echoes(req, PHASE_MS)));
      const b = tunnel.session.open();
      b.on('error', () => {});
      b.write('S');
      const sending = blast(b, Buffer.alloc(64 * 1024, 0x73), PHASE_MS + 1500);
      await sleep(300); // let the bulk stream fill every queue on the way
      bulk.push(percentiles(await echoes(req, PHASE_MS)));
      const sent = await sending;
      bulkMBs = sent.bytes / 1e3 / (PHASE_MS + 1500);
      note(
        `rep ${i + 1}: idle p50 ${idle.at(-1)!.p50.toFixed(3)} p99 ${idle.at(-1)!.p99.toFixed(3)} ms (${idle.at(-1)!.n}), ` +
          `bulk p50 ${bulk.at(-1)!.p50.toFixed(3)} p99 ${bulk.at(-1)!.p99.toFixed(3)} ms (${bulk.at(-1)!.n}), bulk ${bulkMBs.toFixed(0)} MB/s`,
      );
    }
    const i99 = stats(idle.map((r) => r.p99));
    const b99 = stats(bulk.map((r) => r.p99));
    const i50 = stats(idle.map((r) => r.p50));
    const b50 = stats(bulk.map((r) => r.p50));
    const delta = b99.median - i99.median;
    emit({
      bench: 'tunnel-head-of-line',
      metric:
        '1 KiB request/response p99 on a tunnel carrying a saturating bulk stream (loopback, two processes)',
      value: b99.median,
      unit: 'ms',
      baseline: { name: 'same p99 without the bulk stream', value: i99.median, unit: 'ms' },
      ratio: b99.median / i99.median,
      target: 'p99 grows by at most 10 ms',
      pass: delta <= 10,
      p99DeltaMs: delta,
      p50: b50.median,
      baselineP50: i50.median,
      p99Min: b99.min,
      p99Max: b99.max,
      baselineP99Min: i99.min,
      baselineP99Max: i99.max,
      roundTripsIdle: idle.map((r) => r.n),
      roundTripsBulk: bulk.map((r) => r.n),
      bulkMBs,
      reps: REPS,
      phaseMs: PHASE_MS,
    });
    req.end();
  } finally {
    tunnel?.destroy();
    await child.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`tunnel-hol failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
