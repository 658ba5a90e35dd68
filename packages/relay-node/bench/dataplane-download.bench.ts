/**
 * Issue 5, benchmark 2: one large download (GET of BYTES from a node:http origin) on
 * loopback, through the data plane with one and two hops, against two chained plain socket
 * pipes in the same run.
 *
 *   client ─TCP─> pipe A ─TCP─> pipe B ─TCP─> origin                   (baseline)
 *   client ─http─> ENTRY ═tunnel═> EXIT ─http─> origin                   (1 hop)
 *   client ─http─> ENTRY ═tunnel═> RELAY ═tunnel═> EXIT ─http─> origin   (2 hops)
 *
 * Every box is its own process (bench/dataplane-child.ts); the client (node:http, keep-alive
 * agent, body counted and dropped) runs in this process. Rate = bytes / (last body byte -
 * request sent). Baseline, 1-hop and 2-hop runs alternate, REPS of each; medians.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/dataplane-download.bench.ts [reps=3] [MiB=1024]
 */
import http from 'node:http';
import { type Child, emit, MiB, mbps, note, stats, within } from './common.ts';
import {
  childRuntime,
  cpuMs,
  machineLoad,
  ORIGIN_HOST,
  startDataplaneChild,
} from './dataplane-common.ts';

const REPS = Number(process.argv[2] ?? 3);
const BYTES = Number(process.argv[3] ?? 1024) * MiB;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One GET of BYTES; resolves with MB/s. Fails on a short body or a non-200. */
function download(port: number): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const start = performance.now();
      const req = http.get(
        {
          host: '127.0.0.1',
          port,
          path: `/big?bytes=${BYTES}`,
          agent,
          headers: { host: ORIGIN_HOST },
        },
        (res) => {
          let got = 0;
          res.on('data', (c: Buffer) => {
            got += c.length;
          });
          res.on('end', () => {
            if (res.statusCode !== 200 || got !== BYTES) {
              reject(new Error(`status ${res.statusCode}, ${got} of ${BYTES} bytes`));
            } else resolve(mbps(got, performance.now() - start));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
    }),
    120_000,
    'download',
  );
}

async function main(): Promise<void> {
  const started: Child[] = [];
  const start = async (cfg: Record<string, unknown>) => {
    const c = await startDataplaneChild([JSON.stringify(cfg)]);
    started.push(c);
    return c.ready;
  };
  const pid = (ready: Record<string, unknown>) => ready.pid as number;
  try {
    const originPort = (await start({ mode: 'origin' })).port as number;
    const pipeB = await start({ mode: 'pipe', target: originPort });
    const pipeA = await start({ mode: 'pipe', target: pipeB.port });
    const exit = await start({ mode: 'node', id: 'exit', originPort, listen: true });
    const relay = await start({
      mode: 'node',
      id: 'relay',
      originPort,
      listen: true,
      dial: { exit: exit.tunnelUrl },
    });
    const entry1 = await start({
      mode: 'node',
      id: 'entry1',
      originPort,
      http: true,
      dial: { exit: exit.tunnelUrl },
      path: ['entry1', 'exit'],
    });
    const entry2 = await start({
      mode: 'node',
      id: 'entry2',
      originPort,
      http: true,
      dial: { relay: relay.tunnelUrl },
      path: ['entry2', 'relay', 'exit'],
    });
    // [name, port, the processes the bytes cross (their CPU is measured)]
    const paths = [
      ['pipes', pipeA.port as number, [pid(pipeA), pid(pipeB)]],
      ['1 hop', entry1.httpPort as number, [pid(entry1), pid(exit)]],
      ['2 hops', entry2.httpPort as number, [pid(entry2), pid(relay), pid(exit)]],
    ] as const;
    // CPU seconds per GB (10^9 bytes) of the path's processes: robust to a busy machine.
    const cpu: Record<string, number[]> = { pipes: [], '1 hop': [], '2 hops': [] };
    const runs: Record<string, number[]> = { pipes: [], '1 hop': [], '2 hops': [] };
    // Warm-up: one download on each path (JIT, socket buffers, mux windows), not counted.
    for (const [, port] of paths) await download(port);
    for (let i = 0; i < REPS; i++) {
      for (const [name, port, pids] of paths) {
        const c0 = pids.reduce((a, p) => a + cpuMs(p), 0);
        runs[name]!.push(await download(port));
        cpu[name]!.push((pids.reduce((a, p) => a + cpuMs(p), 0) - c0) / 1000 / (BYTES / 1e9));
      }
      note(
        `rep ${i + 1}: ${paths.map(([n]) => `${n} ${runs[n]!.at(-1)!.toFixed(0)} MB/s`).join(', ')}`,
      );
    }
    const base = stats(runs.pipes!);
    const common = {
      bytes: BYTES,
      reps: REPS,
      ...machineLoad(),
      children: childRuntime().children,
    };
    for (const [name, hops] of [
      ['1 hop', 1],
      ['2 hops', 2],
    ] as const) {
      const m = stats(runs[name]!);
      const ratio = m.median / base.median;
      emit({
        bench: `dataplane-download-${hops}hop`,
        metric: `one ${BYTES / MiB} MiB download through ${name === '1 hop' ? 'entry->exit' : 'entry->relay->exit'} on loopback`,
        value: m.median,
        unit: 'MB/s',
        baseline: { name: 'two chained plain socket pipes', value: base.median, unit: 'MB/s' },
        ratio,
        target: '>= 0.7',
        pass: ratio >= 0.7,
        runs: m.runs,
        baselineRuns: base.runs,
        cpuSecPerGB: stats(cpu[name]!).median,
        baselineCpuSecPerGB: stats(cpu.pipes!).median,
        ...common,
      });
    }
  } finally {
    agent.destroy();
    for (const c of started.reverse()) await c.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `dataplane-download failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
