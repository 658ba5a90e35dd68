/**
 * Issue 5, benchmark 3: CLIENTS concurrent keep-alive clients for SECONDS through
 * entry -> exit on loopback; every client sends GET /small (64-byte body) again as soon as
 * the previous response ended.
 *
 *   load process (CLIENTS undici Clients, one connection each)
 *     ─http─> ENTRY ═ws tunnel═> EXIT ─http (keep-alive pool)─> origin
 *
 * The load generator is its own process (bench/dataplane-child.ts mode "load") so this
 * process only samples memory: VmRSS of the entry and the exit from /proc every 250 ms.
 * Memory is reported at start (after a warm-up, before the clients connect), peak, and end
 * (2 s after the clients closed).
 *
 * Pass = no errors and memory bounded, per node:
 *  - live memory: halfway through, the heap after a full GC is at most CLIENTS x 32 KiB
 *    (31 MiB for 1,000) above the one before the clients connected. Per client connection
 *    the entry holds one HTTP socket, its parser and request/response objects and at most
 *    one small request stream (a few KiB); 32 KiB per client is a generous ceiling;
 *  - RSS: peak - start <= CLIENTS x 256 KiB (250 MiB). Looser because RSS also holds
 *    garbage not yet collected and heap V8 keeps reserved after growing (young generation
 *    semi-spaces, old-space headroom), which scale with the request rate, not the clients;
 *  - nothing retained: 2 s after the clients closed, the live heap after a full GC is at
 *    most 8 MiB above the one before they connected (RSS alone cannot tell a leak from
 *    garbage V8 has not collected yet or heap it keeps reserved; tens of thousands of
 *    requests leaking even 100 bytes each would show).
 * Baseline: the origin's own RSS under the same load (it holds up to 128 keep-alive
 * connections from the exit).
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/dataplane-clients.bench.ts [clients=1000] [seconds=30]
 */
import { type Child, emit, note, sleep } from './common.ts';
import {
  childRuntime,
  cpuMs,
  heapAfterGc,
  machineLoad,
  rssMiB,
  runLoad,
  startDataplaneChild,
  startEntryExit,
} from './dataplane-common.ts';

const CLIENTS = Number(process.argv[2] ?? 1000);
const SECONDS = Number(process.argv[3] ?? 30);
const SAMPLE_MS = 250;
const LIVE_PER_CLIENT_MIB = 32 / 1024;
const RSS_PER_CLIENT_MIB = 256 / 1024;
const RETAINED_MIB = 8;

interface Sample {
  at: number;
  rss: number[];
}

function memoryOf(
  samples: Sample[],
  i: number,
  startRss: number,
  endRss: number,
  heapStart: number,
  heapMid: number,
  retained: number,
) {
  const third = (from: number, to: number) =>
    Math.max(...samples.filter((s) => s.at >= from && s.at < to).map((s) => s.rss[i]!));
  const runMs = SECONDS * 1000;
  const peak = Math.max(...samples.map((s) => s.rss[i]!));
  const rssBound = CLIENTS * RSS_PER_CLIENT_MIB;
  const liveBound = CLIENTS * LIVE_PER_CLIENT_MIB;
  return {
    startMiB: startRss,
    peakMiB: peak,
    endMiB: endRss,
    growthMiB: peak - startRss,
    /** Peak RSS of the last third of the run minus that of the middle third (informative). */
    lastThirdMinusMiddleMiB: third((2 * runMs) / 3, runMs + 1) - third(runMs / 3, (2 * runMs) / 3),
    heapAfterGcStartMiB: heapStart,
    heapAfterGcUnderLoadMiB: heapMid,
    liveGrowthMiB: heapMid - heapStart,
    retainedAfterGcMiB: retained,
    bounded:
      peak - startRss <= rssBound && !(heapMid - heapStart > liveBound) && retained <= RETAINED_MIB,
  };
}

async function main(): Promise<void> {
  const started: Child[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    const { origin, exit, entry } = await startEntryExit(started);
    const url = `http://127.0.0.1:${entry.ready.httpPort}`;
    const pids = [entry.proc.pid!, exit.proc.pid!, origin.proc.pid!];

    await runLoad({ url, path: '/small', workers: 50, durationMs: 1000, maxRequests: 1e6 });
    await sleep(1000);
    const heap0 = [await heapAfterGc(entry), await heapAfterGc(exit)];
    const startRss = pids.map(rssMiB);
    const cpu0 = pids.map((p) => cpuMs(p));
    const samples: Sample[] = [];
    const t0 = performance.now();
    timer = setInterval(() => {
      samples.push({ at: performance.now() - t0, rss: pids.map(rssMiB) });
    }, SAMPLE_MS);
    note(
      `${CLIENTS} clients for ${SECONDS} s; RSS at start ${startRss.map((r) => r.toFixed(0)).join('/')} MiB (entry/exit/origin)`,
    );
    // Halfway: live heap of entry and exit under load (full GC; pauses each for a moment).
    const mid = sleep((SECONDS * 1000) / 2).then(async () => [
      await heapAfterGc(entry),
      await heapAfterGc(exit),
    ]);
    const load = await startDataplaneChild(
      [JSON.stringify({ mode: 'load', url, workers: CLIENTS, durationMs: SECONDS * 1000 })],
      SECONDS * 1000 + 60_000,
    );
    started.push(load);
    clearInterval(timer);
    const cpu = pids.map((p, i) => cpuMs(p) - cpu0[i]!);
    const heapMid = await mid;
    await sleep(2000);
    const endRss = pids.map(rssMiB);
    const heap1 = [await heapAfterGc(entry), await heapAfterGc(exit)];
    const retained = heap1.map((h, i) => h.usedMiB - heap0[i]!.usedMiB);
    const r = load.ready as unknown as {
      requests: number;
      errors: number;
      errorSamples: string[];
      rps: number;
      p50Ms: number;
      p99Ms: number;
    };
    const memEntry = memoryOf(
      samples,
      0,
      startRss[0]!,
      endRss[0]!,
      heap0[0]!.usedMiB,
      heapMid[0]!.usedMiB,
      retained[0]!,
    );
    const memExit = memoryOf(
      samples,
      1,
      startRss[1]!,
      endRss[1]!,
      heap0[1]!.usedMiB,
      heapMid[1]!.usedMiB,
      retained[1]!,
    );
    const memOrigin = memoryOf(samples, 2, startRss[2]!, endRss[2]!, Number.NaN, Number.NaN, 0);
    note(`entry ${JSON.stringify(memEntry)}`);
    note(`exit ${JSON.stringify(memExit)}`);
    emit({
      bench: 'dataplane-clients',
      metric: `${CLIENTS} concurrent keep-alive clients for ${SECONDS} s through entry->exit: errors`,
      value: r.errors,
      unit: 'errors',
      baseline: {
        name: 'origin RSS peak under the same load',
        value: memOrigin.peakMiB,
        unit: 'MiB',
      },
      ratio: memEntry.peakMiB / memOrigin.peakMiB,
      target: `0 errors; per node: live heap under load <= start + ${CLIENTS * LIVE_PER_CLIENT_MIB} MiB, RSS peak <= start + ${CLIENTS * RSS_PER_CLIENT_MIB} MiB, live heap after the clients left <= start + ${RETAINED_MIB} MiB`,
      pass: r.errors === 0 && memEntry.bounded && memExit.bounded,
      requests: r.requests,
      rps: r.rps,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      errorSamples: r.errorSamples,
      entry: memEntry,
      exit: memExit,
      origin: memOrigin,
      cpuPctOfCore: {
        entry: cpu[0]! / (SECONDS * 10),
        exit: cpu[1]! / (SECONDS * 10),
        origin: cpu[2]! / (SECONDS * 10),
      },
      clients: CLIENTS,
      seconds: SECONDS,
      ...machineLoad(),
      children: childRuntime().children,
    });
  } finally {
    if (timer) clearInterval(timer);
    for (const c of started.reverse()) await c.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `dataplane-clients failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
