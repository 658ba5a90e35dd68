/**
 * Issue 5, benchmark 1: small responses (64-byte body) through the data plane on loopback.
 *
 *   load ─http─> origin                                          (origin direct)
 *   load ─http─> ENTRY ═ws tunnel, one mux stream per request═> EXIT ─http─> origin
 *   load ─http─> nginx A ─http─> nginx B ─http─> origin          (nginx chain, if installed)
 *
 * Origin, entry, exit and each nginx are separate processes (bench/dataplane-child.ts; nginx
 * one master + one worker each, keep-alive upstreams). The load generator runs in this
 * process (undici Pool, keep-alive): on 2 cores every target then pays the same
 * load-generator CPU, and no extra process competes with the proxies for the cores.
 *
 * Each rep runs, for every target in turn: a throughput phase (CONNS keep-alive
 * connections, closed loop, RUN_MS, at most 500,000 requests) and a latency phase (one
 * connection, sequential requests, LAT_MS). rps and latency under load come from the first;
 * added latency (p50/p99 minus the origin's) from the second, where queueing does not
 * hide it. Medians over REPS reps.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/dataplane-rps.bench.ts [reps=3] [runMs=5000] [conns=50]
 */
import { type Child, emit, note, stats } from './common.ts';
import {
  childRuntime,
  cpuMs,
  type LoadResult,
  machineLoad,
  type NginxChain,
  runLoad,
  startEntryExit,
  startNginxChain,
  syscalls,
  wrkRps,
} from './dataplane-common.ts';

const REPS = Number(process.argv[2] ?? 3);
const RUN_MS = Number(process.argv[3] ?? 5000);
const CONNS = Number(process.argv[4] ?? 50);
const LAT_MS = 2000;
const MAX_REQUESTS = 500_000;
const WARM_REQUESTS = 20_000;
const WARM_MS = 20_000;

interface Target {
  name: string;
  url: string;
  load: LoadResult[];
  lat: LoadResult[];
  /** The proxy processes (CPU per request is measured over them); [] for the origin. */
  pids: number[];
  /** Proxy CPU time per request in the throughput phase, microseconds. */
  cpu: number[];
  /** Per process (entry, exit): [read, write] system calls per request, throughput phase. */
  sys: number[][][];
}

async function measure(t: Target, originPid: number): Promise<void> {
  const pids = t.pids.length > 0 ? t.pids : [originPid];
  const cpu0 = pids.reduce((a, p) => a + cpuMs(p, true), 0);
  const sys0 = t.pids.map(syscalls);
  const load = await runLoad({
    url: t.url,
    path: '/small',
    workers: CONNS,
    durationMs: RUN_MS,
    maxRequests: MAX_REQUESTS,
  });
  const cpu = ((pids.reduce((a, p) => a + cpuMs(p, true), 0) - cpu0) * 1000) / load.requests;
  const sys = t.pids.map((p, i) => {
    const s = syscalls(p);
    return [
      (s.reads - sys0[i]!.reads) / load.requests,
      (s.writes - sys0[i]!.writes) / load.requests,
    ];
  });
  const lat = await runLoad({
    url: t.url,
    path: '/small',
    workers: 1,
    durationMs: LAT_MS,
    maxRequests: MAX_REQUESTS,
  });
  if (load.errors + lat.errors > 0) {
    throw new Error(
      `${t.name}: ${load.errors + lat.errors} errors: ${load.errorSamples[0] ?? lat.errorSamples[0]}`,
    );
  }
  t.load.push(load);
  t.lat.push(lat);
  t.cpu.push(cpu);
  t.sys.push(sys);
  note(
    `${t.name}: ${load.rps.toFixed(0)} req/s, ${cpu.toFixed(0)} us CPU/req, syscalls/req r/w ${sys.map((x) => x.map((v) => v.toFixed(2)).join('/')).join(' ')} (p50 ${load.p50Ms.toFixed(2)} ms, p99 ${load.p99Ms.toFixed(2)} ms at ${CONNS} conns); 1 conn p50 ${lat.p50Ms.toFixed(3)} ms p99 ${lat.p99Ms.toFixed(3)} ms`,
  );
}

const med = (rs: LoadResult[], k: keyof LoadResult) => stats(rs.map((r) => r[k] as number)).median;
const medOf = (v: number[]) => stats(v).median;

async function main(): Promise<void> {
  const started: Child[] = [];
  let nginx: NginxChain | undefined;
  try {
    const { origin, exit, entry, originPort } = await startEntryExit(started);
    nginx = await startNginxChain(originPort);

    const targets: Target[] = [
      {
        name: 'origin direct',
        url: `http://127.0.0.1:${originPort}`,
        load: [],
        lat: [],
        pids: [],
        cpu: [],
        sys: [],
      },
      {
        name: 'mesh entry->exit',
        url: `http://127.0.0.1:${entry.ready.httpPort}`,
        load: [],
        lat: [],
        pids: [entry.proc.pid!, exit.proc.pid!],
        cpu: [],
        sys: [],
      },
    ];
    if (nginx) {
      targets.push({
        name: 'nginx chain',
        url: `http://127.0.0.1:${nginx.port}`,
        load: [],
        lat: [],
        pids: nginx.pids,
        cpu: [],
        sys: [],
      });
    }

    // Warm-up (JIT, connection pools), not counted. By request count, not time: on a busy
    // machine a cold mesh serves a few hundred requests a second, stays in V8's slower
    // tiers for lack of calls, and a 1 s warm-up then measured the interpreter (5x the CPU
    // per request of a warm run).
    for (const t of targets) {
      const w = await runLoad({
        url: t.url,
        path: '/small',
        workers: CONNS,
        durationMs: WARM_MS,
        maxRequests: WARM_REQUESTS,
      });
      note(`${t.name}: warm-up ${w.requests} requests in ${(w.elapsedMs / 1000).toFixed(1)} s`);
    }
    for (let i = 0; i < REPS; i++) for (const t of targets) await measure(t, origin.proc.pid!);

    // wrk as a second opinion (once per target, same connection count), when installed.
    const wrk: Record<string, number | undefined> = {};
    for (const t of targets) wrk[t.name] = await wrkRps(t.url, CONNS, Math.ceil(RUN_MS / 1000));

    const [direct, mesh, chain] = targets as [Target, Target, Target | undefined];
    const base = chain ?? direct;
    const rpsRatio = med(mesh.load, 'rps') / med(base.load, 'rps');
    const common = {
      reps: REPS,
      runMs: RUN_MS,
      conns: CONNS,
      ...machineLoad(),
      children: childRuntime().children,
    };
    emit({
      bench: 'dataplane-rps',
      metric: `small responses (64 B) through entry->exit on loopback, ${CONNS} keep-alive connections`,
      value: med(mesh.load, 'rps'),
      unit: 'req/s',
      baseline: {
        name: chain ? 'two chained nginx reverse proxies' : 'origin direct (nginx not installed)',
        value: med(base.load, 'rps'),
        unit: 'req/s',
      },
      ratio: rpsRatio,
      target: '>= 0.35 of the nginx chain',
      pass: chain ? rpsRatio >= 0.35 : false,
      runs: mesh.load.map((r) => r.rps),
      baselineRuns: base.load.map((r) => r.rps),
      originDirectRps: med(direct.load, 'rps'),
      meshVsDirect: med(mesh.load, 'rps') / med(direct.load, 'rps'),
      meshP50Ms: med(mesh.load, 'p50Ms'),
      meshP99Ms: med(mesh.load, 'p99Ms'),
      meshCpuUsPerReq: medOf(mesh.cpu),
      baselineCpuUsPerReq: medOf(base.cpu),
      originCpuUsPerReq: medOf(direct.cpu),
      // The baseline's proxy CPU per request over the mesh's: moves far less with the
      // machine's load than the rates do.
      cpuRatio: medOf(base.cpu) / medOf(mesh.cpu),
      // [reads, writes] system calls per request of the entry and of the exit (medians).
      meshSyscallsPerReq: {
        entry: [0, 1].map((k) => medOf(mesh.sys.map((s) => s[0]![k]!))),
        exit: [0, 1].map((k) => medOf(mesh.sys.map((s) => s[1]![k]!))),
      },
      wrkRps: wrk,
      // Stalls (a request over 100 ms) summed over the throughput phases of all reps, and
      // the slowest request: a stalled connection shows here even when the rate hides it.
      meshOver100Ms: mesh.load.reduce((a, r) => a + r.over100Ms, 0),
      meshMaxMs: Math.max(...mesh.load.map((r) => r.maxMs)),
      baselineOver100Ms: base.load.reduce((a, r) => a + r.over100Ms, 0),
      baselineMaxMs: Math.max(...base.load.map((r) => r.maxMs)),
      baselineP50Ms: med(base.load, 'p50Ms'),
      baselineP99Ms: med(base.load, 'p99Ms'),
      ...common,
    });
    const added50 = med(mesh.lat, 'p50Ms') - med(direct.lat, 'p50Ms');
    const added99 = med(mesh.lat, 'p99Ms') - med(direct.lat, 'p99Ms');
    emit({
      bench: 'dataplane-latency',
      metric:
        'added p50 latency of entry->exit over origin direct, one connection, sequential requests',
      value: added50,
      unit: 'ms',
      baseline: { name: 'origin direct p50', value: med(direct.lat, 'p50Ms'), unit: 'ms' },
      ratio: med(mesh.lat, 'p50Ms') / med(direct.lat, 'p50Ms'),
      target: 'added p50 < 1 ms',
      pass: added50 < 1,
      meshP50Ms: med(mesh.lat, 'p50Ms'),
      meshP99Ms: med(mesh.lat, 'p99Ms'),
      addedP99Ms: added99,
      directP99Ms: med(direct.lat, 'p99Ms'),
      ...(chain
        ? {
            nginxAddedP50Ms: med(chain.lat, 'p50Ms') - med(direct.lat, 'p50Ms'),
            nginxAddedP99Ms: med(chain.lat, 'p99Ms') - med(direct.lat, 'p99Ms'),
          }
        : { nginx: 'not installed' }),
      ...common,
    });
  } finally {
    await nginx?.stop();
    for (const c of started.reverse()) await c.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `dataplane-rps failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
