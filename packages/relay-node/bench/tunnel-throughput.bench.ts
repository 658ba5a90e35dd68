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

const REPS = Number(process.argv[2] ?? 4);
const RUN_MS = Number(process.argv[3] ?? 2500);
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

async function oneRun(
  entryPort: number,
  sink: Awaited<ReturnType<typeof startSink>>,
): Promise<number> {
  const sock = net.connect({ port: entryPort, host: '127.0.0.1', noDelay: true });
  sock.on('error', () => {});
  sock.resume();
  await within(new Promise((r) => sock.once('connect', r)), 5000, 'connect');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const received = sink.next();
  const { bytes, startAt } = await blast(sock, chunk, RUN_MS, MAX_BYTES);
  const got = await within(received, 30_000, 'sink FIN');
  sock.destroy();
  if (got.bytes !== bytes) throw new Error(`sink got ${got.bytes} of ${bytes} bytes`);
  return mbps(bytes, got.endAt - startAt);
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

    // Warm-up of both paths (JIT, socket buffers), not counted.
    await oneRun(pipeA.ready.port as number, sink);
    await oneRun(entry.ready.port as number, sink);
    const base: number[] = [];
    const mux: number[] = [];
    for (let i = 0; i < REPS; i++) {
      base.push(await oneRun(pipeA.ready.port as number, sink));
      mux.push(await oneRun(entry.ready.port as number, sink));
      note(
        `rep ${i + 1}: pipes ${base.at(-1)!.toFixed(0)} MB/s, tunnel ${mux.at(-1)!.toFixed(0)} MB/s`,
      );
    }
    const b = stats(base);
    const m = stats(mux);
    // Per-pair ratios: each mux run against the baseline run just before it.
    const pairRatios = stats(mux.map((v, i) => v / base[i]!));
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
