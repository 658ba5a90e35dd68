/**
 * Issue 2, benchmark 3: many streams on one mux session.
 *
 * Memory: 10,000 concurrent idle streams on one session over a loopback TCP connection
 * (Session + StreamTransport; both ends live in this process). heapUsed + external after
 * global.gc() is taken before opening, right after the synchronous opens (the opener's
 * cost: nothing has reached the acceptor yet), and once the acceptor holds all 10,000 and
 * a PING went both ways (opener + acceptor). Reported per stream for each end; the value
 * is the larger of the two ends. Config: maxConcurrentStreams 10,000 and a credit budget
 * of 10,000 x 256 KiB per session, because every stream's initial window is a promise of
 * credit (nothing is allocated until data arrives), and the default 256 MiB budget exists
 * precisely to refuse a peer that asks for 2.5 GiB of such promises.
 *
 * Fairness: 1,000 streams on one WebSocket tunnel (TunnelListener + TunnelDialer, default
 * config, both ends in this process), each writing 16 KiB chunks as fast as backpressure
 * allows. Bytes received per stream are counted over MEASURE_MS after WARM_MS of warm-up;
 * Jain's index J = (sum x)^2 / (n * sum x^2).
 *
 * The baseline of both is the target (there is no meaningful plain-socket
 * equivalent of an idle mux stream); it is printed in the same JSON shape.
 *
 *   node --conditions=@relaymesh/source --import tsx --expose-gc packages/relay-node/bench/mux-scale.bench.ts
 */
import { once } from 'node:events';
import net from 'node:net';
import {
  BASE_STREAM_WINDOW,
  CreditBudget,
  type MuxStream,
  Session,
  StreamTransport,
  type Tunnel,
  TunnelDialer,
  TunnelListener,
} from '../src/index.ts';
import { emit, note, sleep, stats, TOKEN, within } from './common.ts';

const IDLE = Number(process.argv[2] ?? 10_000);
const BUSY = Number(process.argv[3] ?? 1000);
const REPS = 3;
const WARM_MS = 500;
const MEASURE_MS = 3000;

const ignore = () => {};
const gc = (globalThis as { gc?: () => void }).gc;

function memory(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

async function tcpPair(): Promise<[net.Socket, net.Socket, net.Server]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const a = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  return [a, b, server];
}

async function idleRun(): Promise<{ opener: number; acceptor: number }> {
  const [a, b, server] = await tcpPair();
  const perSession = IDLE * BASE_STREAM_WINDOW;
  const config = { maxConcurrentStreams: IDLE, sessionCreditLimit: perSession };
  const client = new Session({
    transport: new StreamTransport(a),
    role: 'client',
    config,
    creditBudget: new CreditBudget(perSession),
  });
  const srv = new Session({
    transport: new StreamTransport(b),
    role: 'server',
    config,
    creditBudget: new CreditBudget(perSession),
  });
  const inbound: MuxStream[] = [];
  srv.on('stream', (s: MuxStream) => inbound.push(s));
  await client.ping();
  const outbound: MuxStream[] = [];
  try {
    const m0 = memory();
    for (let i = 0; i < IDLE; i++) outbound.push(client.open());
    const m1 = memory();
    const deadline = Date.now() + 20_000;
    while (inbound.length < IDLE && Date.now() < deadline) await sleep(20);
    if (inbound.length < IDLE) throw new Error(`only ${inbound.length} of ${IDLE} streams arrived`);
    await within(client.ping(), 10_000, 'ping');
    await within(srv.ping(), 10_000, 'ping');
    const m2 = memory();
    if (client.streamCount !== IDLE || srv.streamCount !== IDLE) throw new Error('streams lost');
    return { opener: (m1 - m0) / IDLE, acceptor: (m2 - m1) / IDLE };
  } finally {
    // Attached only now, so the measured streams carry no extra listener.
    for (const s of [...outbound, ...inbound]) s.on('error', ignore);
    client.destroy();
    srv.destroy();
    server.close();
  }
}

function jain(xs: number[]): number {
  let sum = 0;
  let sq = 0;
  for (const x of xs) {
    sum += x;
    sq += x * x;
  }
  return sq === 0 ? 0 : (sum * sum) / (xs.length * sq);
}

async function writeForever(s: MuxStream, chunk: Buffer, stopAt: number): Promise<void> {
  while (performance.now() < stopAt && !s.destroyed) {
    if (!s.write(chunk)) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, stopAt - performance.now()));
        s.once('drain', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

async function busyRun(): Promise<{
  jain: number;
  mbs: number;
  minShare: number;
  maxShare: number;
}> {
  const listener = new TunnelListener({
    nodeId: 'scale-l',
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
  });
  await listener.listen();
  const up = once(listener, 'tunnel') as Promise<[Tunnel]>;
  const client = await new TunnelDialer({ nodeId: 'scale-d', token: TOKEN }).dial(listener.url);
  const [server] = await within(up, 5000, 'tunnel');
  const counts = new Map<number, number>();
  let counting = false;
  server.session.on('stream', (s: MuxStream) => {
    counts.set(s.id, 0);
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      if (counting) counts.set(s.id, counts.get(s.id)! + c.length);
    });
  });
  try {
    const chunk = Buffer.alloc(16 * 1024, 0x63);
    const stopAt = performance.now() + WARM_MS + MEASURE_MS + 1000;
    const streams: MuxStream[] = [];
    for (let i = 0; i < BUSY; i++) {
      const s = client.session.open();
      s.on('error', () => {});
      streams.push(s);
    }
    const writers = streams.map((s) => writeForever(s, chunk, stopAt));
    await sleep(WARM_MS);
    counting = true;
    const t0 = performance.now();
    await sleep(MEASURE_MS);
    counting = false;
    const ms = performance.now() - t0;
    for (const s of streams) s.destroy();
    await Promise.all(writers);
    const xs = streams.map((s) => counts.get(s.id) ?? 0);
    const total = xs.reduce((x, y) => x + y, 0);
    const mean = total / xs.length;
    return {
      jain: jain(xs),
      mbs: total / 1e3 / ms,
      minShare: Math.min(...xs) / mean,
      maxShare: Math.max(...xs) / mean,
    };
  } finally {
    client.destroy();
    server.destroy();
    listener.destroy();
  }
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with --expose-gc');
  const idle: Array<{ opener: number; acceptor: number }> = [];
  for (let i = 0; i < REPS; i++) {
    idle.push(await idleRun());
    note(
      `idle rep ${i + 1}: opener ${idle.at(-1)!.opener.toFixed(0)} B/stream, acceptor ${idle.at(-1)!.acceptor.toFixed(0)} B/stream`,
    );
  }
  const op = stats(idle.map((r) => r.opener));
  const ac = stats(idle.map((r) => r.acceptor));
  const worst = Math.max(op.median, ac.median);
  emit({
    bench: 'mux-idle-stream-memory',
    metric: `heapUsed+external per idle stream, ${IDLE} streams on one session (the larger end)`,
    value: worst,
    unit: 'bytes',
    baseline: { name: 'target (issue 2)', value: 4096, unit: 'bytes' },
    ratio: worst / 4096,
    target: '<= 4096 bytes per stream (ratio <= 1)',
    pass: worst <= 4096,
    openerMedian: op.median,
    openerMin: op.min,
    openerMax: op.max,
    acceptorMedian: ac.median,
    acceptorMin: ac.min,
    acceptorMax: ac.max,
    bothEndsPerStream: op.median + ac.median,
    streams: IDLE,
    reps: REPS,
  });
  const busy: Array<{ jain: number; mbs: number; minShare: number; maxShare: number }> = [];
  for (let i = 0; i < REPS; i++) {
    busy.push(await busyRun());
    note(
      `busy rep ${i + 1}: J ${busy.at(-1)!.jain.toFixed(4)}, ${busy.at(-1)!.mbs.toFixed(0)} MB/s`,
    );
  }
  const j = stats(busy.map((r) => r.jain));
  emit({
    bench: 'mux-fairness',
    metric: `Jain's index over bytes per stream, ${BUSY} busy streams on one tunnel, ${MEASURE_MS} ms`,
    value: j.median,
    unit: 'index',
    baseline: { name: 'target (issue 2)', value: 0.9, unit: 'index' },
    ratio: j.median / 0.9,
    target: '>= 0.9 (ratio >= 1)',
    pass: j.median >= 0.9,
    min: j.min,
    max: j.max,
    aggregateMBs: stats(busy.map((r) => r.mbs)).median,
    minShareOfMean: stats(busy.map((r) => r.minShare)).median,
    maxShareOfMean: stats(busy.map((r) => r.maxShare)).median,
    streams: BUSY,
    reps: REPS,
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`mux-scale failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
