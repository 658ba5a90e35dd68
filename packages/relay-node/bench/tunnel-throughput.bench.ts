/**
 * Issue 2, benchmark 1: one stream on loopback through a mux tunnel between two relay
 * processes, against the same path made of two chained plain socket pipes.
 *
 *   client ─TCP─> A ─TCP─> B ─TCP─> sink                  (baseline: `pipe` both ways)
 *   client ─TCP─> A ═WebSocket tunnel, one mux stream═> B ─TCP─> sink
 *
 * The bench process is the client and the sink; A and B are child processes
 * (bench/tunnel-child.ts). A dials the tunnel (client role: masked frames, bufferutil).
 * Each run writes 64 KiB chunks for RUN_MS (at most MAX_BYTES), ends, and the rate is
 * bytes / (sink FIN - first write). Baseline and mux runs alternate, REPS of each.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/tunnel-throughput.bench.ts [reps] [runMs]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  blast,
  type Child,
  emit,
  MiB,
  mbps,
  note,
  startChild,
  startSink,
  stats,
  within,
} from './common.ts';

const REPS = Number(process.argv[2] ?? 5);
const RUN_MS = Number(process.argv[3] ?? 2000);
const MAX_BYTES = 2048 * MiB;
const CHILD = fileURLToPath(new URL('./tunnel-child.ts', import.meta.url));

function hasBufferutil(): boolean {
  try {
    createRequire(import.meta.url)('bufferutil');
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 10 ms ticks). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

interface Run {
  mbs: number;
  /** CPU seconds the two relay processes used per GB moved (robust to a busy machine). */
  cpuPerGB: number;
}

async function oneRun(
  entryPort: number,
  relays: number[],
  sink: Awaited<ReturnType<typeof startSink>>,
): Promise<Run> {
  const sock = net.connect({ port: entryPort, host: '127.0.0.1', noDelay: true });
  sock.on('error', () => {});
  sock.resume();
  await within(new Promise((r) => sock.once('connect', r)), 5000, 'connect');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const received = sink.next();
  const cpu0 = relays.reduce((t, pid) => t + cpuSeconds(pid), 0);
  const { bytes, startAt } = await blast(sock, chunk, RUN_MS, MAX_BYTES);
  const got = await within(received, 30_000, 'sink FIN');
  const cpu1 = relays.reduce((t, pid) => t + cpuSeconds(pid), 0);
  sock.destroy();
  if (got.bytes !== bytes) throw new Error(`sink got ${got.bytes} of ${bytes} bytes`);
  return { mbs: mbps(bytes, got.endAt - startAt), cpuPerGB: (cpu1 - cpu0) / (bytes / 1e9) };
}

async function main(): Promise<void> {
  const sink = await startSink();
  const started: Child[] = [];
  try {
    const pipeB = await startChild(CHILD, [JSON.stringify({ mode: 'pipe', target: sink.port })]);
    started.push(pipeB);
    const pipeA = await startChild(CHILD, [
      JSON.stringify({ mode: 'pipe', target: pipeB.ready.port }),
    ]);
    started.push(pipeA);
    const exit = await startChild(CHILD, [JSON.stringify({ mode: 'exit', target: sink.port })]);
    started.push(exit);
    const entry = await startChild(CHILD, [
      JSON.stringify({ mode: 'entry', tunnelUrl: exit.ready.url }),
    ]);
    started.push(entry);

    const pipePath = { port: pipeA.ready.port as number, pids: [pipeA.proc.pid!, pipeB.proc.pid!] };
    const muxPath = { port: entry.ready.port as number, pids: [entry.proc.pid!, exit.proc.pid!] };
    // Warm-up of both paths (JIT, socket buffers), not counted: two each, because the
    // first measured tunnel run after a single warm-up was still often the slowest.
    for (let i = 0; i < 2; i++) {
      await oneRun(pipePath.port, pipePath.pids, sink);
      await oneRun(muxPath.port, muxPath.pids, sink);
    }
    const base: Run[] = [];
    const mux: Run[] = [];
    for (let i = 0; i < REPS; i++) {
      base.push(await oneRun(pipePath.port, pipePath.pids, sink));
      mux.push(await oneRun(muxPath.port, muxPath.pids, sink));
      const [pb, pm] = [base.at(-1)!, mux.at(-1)!];
      note(
        `rep ${i + 1}: pipes ${pb.mbs.toFixed(0)} MB/s (${pb.cpuPerGB.toFixed(2)} CPU s/GB), ` +
          `tunnel ${pm.mbs.toFixed(0)} MB/s (${pm.cpuPerGB.toFixed(2)} CPU s/GB)`,
      );
    }
    const b = stats(base.map((r) => r.mbs));
    const m = stats(mux.map((r) => r.mbs));
    // Per-pair ratios: each mux run against the baseline run just before it.
    const pairRatios = stats(mux.map((r, i) => r.mbs / base[i]!.mbs));
    const bCpu = stats(base.map((r) => r.cpuPerGB));
    const mCpu = stats(mux.map((r) => r.cpuPerGB));
    const ratio = m.median / b.median;
    emit({
      bench: 'tunnel-throughput',
      metric: 'one stream through a mux tunnel between two processes, loopback',
      value: m.median,
      unit: 'MB/s',
      baseline: {
        name: 'two chained plain socket pipes (same processes count)',
        value: b.median,
        unit: 'MB/s',
      },
      ratio,
      target: '>= 0.7 (aim 0.85)',
      pass: ratio >= 0.7,
      min: m.min,
      max: m.max,
      baselineMin: b.min,
      baselineMax: b.max,
      pairRatioMedian: pairRatios.median,
      pairRatioMin: pairRatios.min,
      pairRatioMax: pairRatios.max,
      relayCpuSecondsPerGB: mCpu.median,
      baselineRelayCpuSecondsPerGB: bCpu.median,
      cpuRatio: bCpu.median / mCpu.median,
      reps: REPS,
      runMs: RUN_MS,
      bufferutil: hasBufferutil(),
    });
  } finally {
    for (const c of started.reverse()) await c.stop();
    sink.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `tunnel-throughput failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
