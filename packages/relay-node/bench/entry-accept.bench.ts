/**
 * Issue 6: what the entry's acceptor process (EntryServerOptions.acceptor, docs/data-plane.md
 * §4.6) costs a new client connection, against the entry accepting itself (inline).
 *
 *   load ─fresh connection, GET, Connection: close─> ENTRY (its own exit) ─http─> origin
 *
 * The entry runs in a process of its own (slow-clients-entry.ts, its acceptor in another
 * when `process`); the origin (64-byte body, keep-alive to the entry) and the load run in
 * this one. For each rep, inline then process (alternating which goes first): a rate phase
 * (CONNS loops, each a fresh connection per request, RUN_MS, at most 20,000 connections)
 * and a latency phase (one loop, LAT_MS). Reported, medians over REPS:
 *  - the entry process's CPU per connection: the event loop the open streams share (with an
 *    acceptor it receives each connection over IPC instead of accepting it);
 *  - entry + acceptor CPU per connection;
 *  - connections a second, and the latency phase's p50 (connect to the response's end);
 *  - the floor of what an acceptor process adds to that p50: Node's own handle passing
 *    (entry-accept-ipc-child.ts accepts and sends each socket to this process, whose
 *    http.Server answers it), against the same http.Server listening itself; one latency
 *    phase each per rep. The acceptor's added p50 (process - inline) is reported against
 *    that floor's (ipc - direct).
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/entry-accept.bench.ts [reps=3] [runMs=4000] [conns=16]
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Child, emit, note, quantile, startChild, stats } from './common.ts';
import { cpuMs, machineLoad } from './dataplane-common.ts';

const REPS = Number(process.argv[2] ?? 3);
const RUN_MS = Number(process.argv[3] ?? 4000);
const CONNS = Number(process.argv[4] ?? 16);
const LAT_MS = 2000;
const MAX_CONNECTIONS = 20_000;
const ENTRY = fileURLToPath(new URL('./slow-clients-entry.ts', import.meta.url));
const IPC_CHILD = fileURLToPath(new URL('./entry-accept-ipc-child.ts', import.meta.url));
const BODY = Buffer.alloc(64, 'x');
const REQUEST = 'GET / HTTP/1.1\r\nHost: fast.local\r\nConnection: close\r\n\r\n';

type Mode = 'inline' | 'process';

interface Phase {
  conns: number;
  ms: number;
  failed: number;
  latencies: number[];
}

/** One fresh connection, one request; resolves with its time in ms (NaN: failed). */
function once(port: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () =>
      resolve(
        got.startsWith('HTTP/1.1 200') && got.endsWith(BODY.toString())
          ? performance.now() - t0
          : Number.NaN,
      ),
    );
    s.write(REQUEST);
  });
}

async function phase(port: number, loops: number, ms: number, max: number): Promise<Phase> {
  const out: Phase = { conns: 0, ms: 0, failed: 0, latencies: [] };
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (performance.now() < end && out.conns + out.failed < max) {
        const t = await once(port);
        if (Number.isNaN(t)) out.failed++;
        else {
          out.conns++;
          out.latencies.push(t);
        }
      }
    }),
  );
  out.ms = performance.now() - t0;
  return out;
}

interface Sample {
  entryUs: number;
  totalUs: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

async function measure(mode: Mode, originPort: number): Promise<Sample> {
  const entry: Child = await startChild(ENTRY, [
    JSON.stringify({ originPort, via: 'local', maxConnections: 4096, acceptor: mode }),
  ]);
  try {
    const port = entry.ready.port as number;
    const pid = entry.ready.pid as number;
    const acceptorPid = entry.ready.acceptorPid as number | undefined;
    const cpu = () => ({ e: cpuMs(pid), a: acceptorPid ? cpuMs(acceptorPid) : 0 });
    await phase(port, CONNS, 1000, 2000); // warm-up: JIT, the origin pool
    const c0 = cpu();
    const load = await phase(port, CONNS, RUN_MS, MAX_CONNECTIONS);
    const c1 = cpu();
    const lat = await phase(port, 1, LAT_MS, MAX_CONNECTIONS);
    const sorted = lat.latencies.sort((a, b) => a - b);
    return {
      entryUs: ((c1.e - c0.e) * 1000) / load.conns,
      totalUs: ((c1.e - c0.e + c1.a - c0.a) * 1000) / load.conns,
      rate: (load.conns * 1000) / load.ms,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      failed: load.failed + lat.failed,
    };
  } finally {
    await entry.stop();
  }
}

/**
 * The floor: p50 of the latency phase against a bare http.Server (64-byte body) in this
 * process, listening itself (`direct`) or fed by entry-accept-ipc-child.ts over IPC (`ipc`).
 */
async function floor(): Promise<{ direct: number; ipc: number }> {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-length', BODY.length);
    res.end(BODY);
  });
  const p50 = async (port: number) => {
    await phase(port, 1, 500, MAX_CONNECTIONS); // warm-up
    const lat = await phase(port, 1, LAT_MS, MAX_CONNECTIONS);
    if (lat.failed > 0) throw new Error(`floor: ${lat.failed} requests failed`);
    return quantile(
      lat.latencies.sort((a, b) => a - b),
      0.5,
    );
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const direct = await p50((server.address() as net.AddressInfo).port);
  server.close();
  server.closeAllConnections();
  const [toHttp] = server.listeners('connection') as Array<(s: net.Socket) => void>;
  const child = fork(IPC_CHILD, [], { execArgv: process.execArgv, stdio: 'inherit' });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`ipc child exited with ${code}`)));
      child.on('message', (m: { t: string; port?: number }, socket?: net.Socket) => {
        if (m.t === 'listening') resolve(m.port as number);
        else if (socket && toHttp) {
          socket.setNoDelay(true);
          toHttp.call(server, socket);
        }
      });
    });
    return { direct, ipc: await p50(port) };
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const origin = http.createServer((_req, res) => {
    res.setHeader('content-length', BODY.length);
    res.end(BODY);
  });
  origin.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originPort = (origin.address() as net.AddressInfo).port;
  const samples: Record<Mode, Sample[]> = { inline: [], process: [] };
  const floors: Array<{ direct: number; ipc: number }> = [];
  for (let rep = 0; rep < REPS; rep++) {
    const f = await floor();
    floors.push(f);
    note(
      `rep ${rep + 1} floor: p50 direct ${f.direct.toFixed(2)} ms, over IPC ${f.ipc.toFixed(2)} ms`,
    );
    const order: Mode[] = rep % 2 === 0 ? ['inline', 'process'] : ['process', 'inline'];
    for (const mode of order) {
      const s = await measure(mode, originPort);
      samples[mode].push(s);
      note(
        `rep ${rep + 1} ${mode}: ${s.rate.toFixed(0)} conn/s, entry ${s.entryUs.toFixed(0)} us/conn, ` +
          `with acceptor ${s.totalUs.toFixed(0)} us/conn, p50 ${s.p50Ms.toFixed(2)} ms, failed ${s.failed}`,
      );
    }
  }
  origin.close();
  const med = (mode: Mode, k: keyof Sample) => stats(samples[mode].map((s) => s[k])).median;
  const failed = [...samples.inline, ...samples.process].reduce((a, s) => a + s.failed, 0);
  const common = { reps: REPS, runMs: RUN_MS, conns: CONNS, failed, machine: machineLoad() };
  const line = (
    bench: string,
    metric: string,
    k: keyof Sample,
    unit: string,
    target: string,
    pass: (ratio: number) => boolean,
  ) => {
    const value = med('process', k);
    const base = med('inline', k);
    const ratio = value / base;
    emit({
      bench,
      metric,
      value,
      unit,
      baseline: { name: 'the entry accepting itself (inline), same run', value: base, unit },
      ratio,
      target,
      pass: pass(ratio) && failed === 0,
      samples: {
        process: samples.process.map((s) => s[k]),
        inline: samples.inline.map((s) => s[k]),
      },
      ...common,
    });
  };
  line(
    'entry-accept-entry-cpu',
    'entry process CPU per new connection (GET, 64 B), acceptor process',
    'entryUs',
    'us',
    '<= 1.3 x inline (receiving a connection over IPC costs more than accepting it)',
    (r) => r <= 1.3,
  );
  line(
    'entry-accept-total-cpu',
    'entry + acceptor CPU per new connection (GET, 64 B), acceptor process',
    'totalUs',
    'us',
    '<= 1.5 x inline',
    (r) => r <= 1.5,
  );
  line(
    'entry-accept-rate',
    `new connections a second through the entry (${CONNS} loops), acceptor process`,
    'rate',
    'conn/s',
    '>= 0.75 x inline',
    (r) => r >= 0.75,
  );
  // What the acceptor adds to a new connection's p50, per rep (the two modes of a rep ran
  // back to back), against what Node's own handle passing adds to a bare server's.
  const added = samples.process.map((p, i) => p.p50Ms - (samples.inline[i]?.p50Ms ?? Number.NaN));
  const floorAdded = floors.map((f) => f.ipc - f.direct);
  const value = stats(added).median;
  const base = stats(floorAdded).median;
  emit({
    bench: 'entry-accept-latency',
    metric:
      'p50 of connect to response end, one loop: what the acceptor process adds (process - inline)',
    value,
    unit: 'ms',
    baseline: {
      name: "what Node's own handle passing adds to a bare http.Server's p50 (ipc - direct), same run",
      value: base,
      unit: 'ms',
    },
    ratio: value / base,
    target: "<= 2 x Node's own handle passing",
    pass: value / base <= 2 && failed === 0,
    p50Ms: { process: med('process', 'p50Ms'), inline: med('inline', 'p50Ms') },
    floorP50Ms: {
      ipc: stats(floors.map((f) => f.ipc)).median,
      direct: stats(floors.map((f) => f.direct)).median,
    },
    samples: { added, floorAdded },
    ...common,
  });
}

await main();
