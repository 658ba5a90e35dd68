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
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
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

interface Phase {
  p50: number;
  p99: number;
  n: number;
  loopP99: number;
  /** This process's GC pauses during the phase: the longest and the sum (ms). */
  gcMaxMs: number;
  gcTotalMs: number;
  /** Full (mark-compact) collections per second during the phase. */
  gcMajorPerS: number;
  bulkMBs: number;
}

/**
 * Echo round trips on `req` while a bulk stream on `bulkTunnel` saturates it. Also records
 * this process's event-loop delay: how much of the p99 is waiting for a CPU (the machine is
 * shared) rather than for queued bytes.
 */
async function bulkPhase(req: MuxStream, bulkTunnel: Tunnel): Promise<Phase> {
  const b = bulkTunnel.session.open();
  b.on('error', () => {});
  b.write('S');
  const sendMs = PHASE_MS + 1500;
  const sending = blast(b, Buffer.alloc(64 * 1024, 0x73), sendMs);
  await sleep(300); // let the bulk stream fill every queue on the way
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let gcMaxMs = 0;
  let gcTotalMs = 0;
  let gcMajor = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMaxMs = Math.max(gcMaxMs, e.duration);
      gcTotalMs += e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcMajor++;
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  const pct = percentiles(await echoes(req, PHASE_MS));
  const phaseS = (performance.now() - t0) / 1000;
  loop.disable();
  gc.disconnect();
  const sent = await sending;
  return {
    ...pct,
    loopP99: loop.percentile(99) / 1e6,
    gcMaxMs,
    gcTotalMs,
    gcMajorPerS: gcMajor / phaseS,
    bulkMBs: sent.bytes / 1e3 / sendMs,
  };
}

const fmt = (p: { p50: number; p99: number; n: number }) =>
  `p50 ${p.p50.toFixed(3)} p99 ${p.p99.toFixed(3)} ms (${p.n})`;

async function main(): Promise<void> {
  const child = await startChild(CHILD, [JSON.stringify({ mode: 'echo' })]);
  const tunnels: Tunnel[] = [];
  try {
    const url = child.ready.url as string;
    const tunnel = await new TunnelDialer({ nodeId: 'hol-dialer', token: TOKEN }).dial(url);
    tunnels.push(tunnel);
    // Control: the same bulk load on a second tunnel (its own TCP connection) between the
    // same two processes: same CPU load, no shared queue with the requests.
    const other = await new TunnelDialer({ nodeId: 'hol-dialer-2', token: TOKEN }).dial(url);
    tunnels.push(other);
    const req = tunnel.session.open();
    req.on('error', () => {});
    req.write('E');
    await echoes(req, 500); // warm-up
    const idle: Array<{ p50: number; p99: number; n: number }> = [];
    const bulk: Phase[] = [];
    const control: Phase[] = [];
    for (let i = 0; i < REPS; i++) {
      idle.push(percentiles(await echoes(req, PHASE_MS)));
      bulk.push(await bulkPhase(req, tunnel));
      control.push(await bulkPhase(req, other));
      note(
        `rep ${i + 1}: idle ${fmt(idle.at(-1)!)}; bulk on the same tunnel ${fmt(bulk.at(-1)!)}, ` +
          `${bulk.at(-1)!.bulkMBs.toFixed(0)} MB/s, loop delay p99 ${bulk.at(-1)!.loopP99.toFixed(1)} ms, ` +
          `GC max ${bulk.at(-1)!.gcMaxMs.toFixed(1)} ms, ${bulk.at(-1)!.gcMajorPerS.toFixed(1)} full/s; ` +
          `bulk on another tunnel ${fmt(control.at(-1)!)}, ${control.at(-1)!.bulkMBs.toFixed(0)} MB/s, ` +
          `loop delay p99 ${control.at(-1)!.loopP99.toFixed(1)} ms`,
      );
    }
    const i99 = stats(idle.map((r) => r.p99));
    const b99 = stats(bulk.map((r) => r.p99));
    const c99 = stats(control.map((r) => r.p99));
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
      p50: stats(bulk.map((r) => r.p50)).median,
      baselineP50: stats(idle.map((r) => r.p50)).median,
      p99Min: b99.min,
      p99Max: b99.max,
      baselineP99Min: i99.min,
      baselineP99Max: i99.max,
      bulkMBs: stats(bulk.map((r) => r.bulkMBs)).median,
      eventLoopDelayP99Ms: stats(bulk.map((r) => r.loopP99)).median,
      gcMaxMs: stats(bulk.map((r) => r.gcMaxMs)).median,
      gcTotalMs: stats(bulk.map((r) => r.gcTotalMs)).median,
      gcMajorPerS: stats(bulk.map((r) => r.gcMajorPerS)).median,
      controlOtherTunnelP50: stats(control.map((r) => r.p50)).median,
      controlOtherTunnelP99: c99.median,
      controlBulkMBs: stats(control.map((r) => r.bulkMBs)).median,
      controlEventLoopDelayP99Ms: stats(control.map((r) => r.loopP99)).median,
      roundTripsIdle: idle.map((r) => r.n),
      roundTripsBulk: bulk.map((r) => r.n),
      reps: REPS,
      phaseMs: PHASE_MS,
    });
    req.end();
  } finally {
    for (const t of tunnels) t.destroy();
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
