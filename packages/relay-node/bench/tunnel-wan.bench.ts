/**
 * Issue 2, benchmark 2: one stream over an emulated WAN link of 150 ms RTT capped at
 * 200 Mbit/s, with receive-window auto-tuning (default MuxConfig: 256 KiB growing to
 * 16 MiB) and with the window pinned at 256 KiB (maxStreamWindow = initialStreamWindow).
 *
 * The link is the world's link emulator (@relaymesh/world egress proxy, its own process):
 * the tunnel is dialed through it with the HttpConnectDialer, exactly as a node behind
 * `--egress-proxy` would. It delays both directions by 75 ms, paces each direction at
 * 200 Mbit/s and bounds the bytes in flight, so the sender feels backpressure.
 * Baseline: a plain TCP stream through the same link in the same run (what the link
 * really delivers); the configured rate is printed too.
 *
 * The stream runs from the dialer (region a) to the listener (region b), both in this
 * process. Rates are taken at the receiver: the steady rate over the last STEADY_MS of
 * each run, and the first time a 500 ms window reached 0.85 of the configured rate.
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/tunnel-wan.bench.ts [reps]
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HttpConnectDialer } from '@relaymesh/shared';
import {
  BASE_STREAM_WINDOW,
  type MuxConfig,
  type Tunnel,
  TunnelDialer,
  TunnelListener,
} from '../src/index.ts';
import { blast, emit, MiB, note, startChild, stats, TOKEN, within } from './common.ts';

const REPS = Number(process.argv[2] ?? 3);
const RTT_MS = 150;
const RATE_BPS = 200e6;
const CAPACITY = RATE_BPS / 8 / 1e6; // MB/s
const AUTO_MS = 6000;
const FIXED_MS = 4000;
const TCP_MS = 4500;
const STEADY_MS = 2000;
const WINDOW_MS = 500;
const REACH = 0.85;
const PROXY = fileURLToPath(
  new URL('./bin/egress-proxy.ts', import.meta.resolve('@relaymesh/world')),
);

/** Cumulative bytes received over time (ms since the sender's first write). */
class Meter {
  readonly t: number[] = [];
  readonly bytes: number[] = [];
  #total = 0;
  start = 0;

  attach(r: Readable): Promise<void> {
    r.on('data', (c: Buffer) => {
      this.#total += c.length;
      this.t.push(performance.now());
      this.bytes.push(this.#total);
    });
    r.on('error', () => {});
    return new Promise((resolve) => {
      r.once('end', resolve);
      r.once('close', resolve);
    });
  }

  /** Bytes in (from, to] of the time line (absolute performance.now ms). */
  #at(time: number): number {
    let lo = 0;
    let hi = this.t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid]! <= time) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.bytes[lo - 1]!;
  }

  /** MB/s over the last `ms` before `end`. */
  rate(end: number, ms: number): number {
    return (this.#at(end) - this.#at(end - ms)) / 1e3 / ms;
  }

  /** Seconds from start until a WINDOW_MS window first reached `mbs`, or undefined. */
  reach(mbs: number, end: number): number | undefined {
    for (let e = this.start + WINDOW_MS; e <= end; e += 50) {
      if (this.rate(e, WINDOW_MS) >= mbs) return (e - this.start) / 1000;
    }
    return undefined;
  }
}

interface RunResult {
  steady: number;
  reachS: number | undefined;
}

async function measure(
  w: NodeJS.WritableStream & { destroyed?: boolean },
  meter: Meter,
  done: Promise<void>,
  ms: number,
): Promise<RunResult> {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const sending = blast(w, chunk, ms, 4096 * MiB);
  meter.start = performance.now();
  const { startAt } = await sending;
  meter.start = startAt;
  const end = startAt + ms;
  await within(done, 20_000, 'receiver end');
  return { steady: meter.rate(end, STEADY_MS), reachS: meter.reach(REACH * CAPACITY, end) };
}

async function tcpRun(
  dialer: HttpConnectDialer,
  sinkPort: number,
  server: net.Server,
): Promise<RunResult> {
  const meter = new Meter();
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const sock = await dialer.dial({ host: '127.0.0.1', port: sinkPort });
  const [inbound] = await within(accepted, 5000, 'sink accept');
  const done = meter.attach(inbound);
  const r = await measure(sock, meter, done, TCP_MS);
  sock.destroy();
  inbound.destroy();
  return r;
}

async function muxRun(
  dialer: HttpConnectDialer,
  listener: TunnelListener,
  mux: Partial<MuxConfig>,
  ms: number,
  n: number,
): Promise<RunResult & { window: number }> {
  const tunnels: Tunnel[] = [];
  const tunnelUp = once(listener, 'tunnel') as Promise<[Tunnel]>;
  const td = new TunnelDialer({ nodeId: `wan-dialer-${n}`, token: TOKEN, dialer, mux });
  const client = await td.dial(listener.url);
  tunnels.push(client);
  const [server] = await within(tunnelUp, 5000, 'listener tunnel');
  tunnels.push(server);
  try {
    const meter = new Meter();
    const streamIn = once(server.session, 'stream');
    const s = client.session.open();
    s.on('error', () => {});
    s.resume();
    const [inbound] = (await within(streamIn, 5000, 'inbound stream')) as [
      Readable & { receiveWindow: number },
    ];
    const done = meter.attach(inbound);
    const r = await measure(s, meter, done, ms);
    return { ...r, window: inbound.receiveWindow };
  } finally {
    for (const t of tunnels) t.destroy();
  }
}

async function main(): Promise<void> {
  const sinkServer = net.createServer();
  sinkServer.listen(0, '127.0.0.1');
  await once(sinkServer, 'listening');
  const sinkPort = (sinkServer.address() as net.AddressInfo).port;
  const autoListener = new TunnelListener({
    nodeId: 'wan-auto',
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
  });
  const pinned: Partial<MuxConfig> = {
    initialStreamWindow: BASE_STREAM_WINDOW,
    maxStreamWindow: BASE_STREAM_WINDOW,
  };
  const fixedListener = new TunnelListener({
    nodeId: 'wan-fixed',
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    mux: pinned,
  });
  const autoPort = (await autoListener.listen()).port;
  const fixedPort = (await fixedListener.listen()).port;
  const link = { rttMs: RTT_MS, bandwidthBps: RATE_BPS, jitter: { kind: 'none' } };
  const config = {
    regions: ['a'],
    links: [
      { from: 'a', to: 'b', ...link },
      { from: 'b', to: 'a', ...link },
    ],
    endpoints: [sinkPort, autoPort, fixedPort].map((port) => ({
      host: '127.0.0.1',
      port,
      region: 'b',
    })),
    controlPort: null,
  };
  const proxy = await startChild(PROXY, [JSON.stringify(config), '--exit-with-parent']);
  try {
    const dialer = new HttpConnectDialer(`http://127.0.0.1:${proxy.ready.port as number}`);
    const tcp: RunResult[] = [];
    const auto: Array<RunResult & { window: number }> = [];
    const fixed: Array<RunResult & { window: number }> = [];
    for (let i = 0; i < REPS; i++) {
      tcp.push(await tcpRun(dialer, sinkPort, sinkServer));
      auto.push(await muxRun(dialer, autoListener, {}, AUTO_MS, i));
      if (i < 2) fixed.push(await muxRun(dialer, fixedListener, pinned, FIXED_MS, 100 + i));
      note(
        `rep ${i + 1}: tcp ${tcp.at(-1)!.steady.toFixed(1)} MB/s, auto ${auto.at(-1)!.steady.toFixed(1)} MB/s ` +
          `(0.85 at ${auto.at(-1)!.reachS?.toFixed(2) ?? '-'} s, window ${auto.at(-1)!.window}), fixed ${fixed.at(-1)?.steady.toFixed(2) ?? '-'} MB/s`,
      );
    }
    const base = stats(tcp.map((r) => r.steady));
    const a = stats(auto.map((r) => r.steady));
    const reach = auto.map((r) => r.reachS ?? Number.POSITIVE_INFINITY);
    const reachS = stats(reach);
    const ratio = a.median / base.median;
    const common = {
      linkRttMs: RTT_MS,
      linkRateMbit: RATE_BPS / 1e6,
      configuredMBs: CAPACITY,
      emulator: '@relaymesh/world egress proxy (separate process), HttpConnectDialer',
    };
    emit({
      bench: 'tunnel-wan-autotune',
      metric: `one mux stream, ${RTT_MS} ms RTT ${RATE_BPS / 1e6} Mbit/s link, steady rate (last ${STEADY_MS} ms of ${AUTO_MS} ms)`,
      value: a.median,
      unit: 'MB/s',
      baseline: {
        name: 'plain TCP through the same emulated link',
        value: base.median,
        unit: 'MB/s',
      },
      ratio,
      target: `>= ${REACH} of capacity, reached within 5 s`,
      pass: ratio >= REACH && a.median >= REACH * CAPACITY * 0.95 && reachS.median <= 5,
      ratioToConfigured: a.median / CAPACITY,
      min: a.min,
      max: a.max,
      baselineMin: base.min,
      baselineMax: base.max,
      reachSeconds: reachS.median,
      reachSecondsRuns: reach.map((v) => (Number.isFinite(v) ? v : null)),
      finalWindowBytes: auto.map((r) => r.window),
      reps: REPS,
      ...common,
    });
    const f = stats(fixed.map((r) => r.steady));
    const fixedRatio = f.median / base.median;
    const expected = BASE_STREAM_WINDOW / (RTT_MS / 1000) / 1e6 / CAPACITY;
    emit({
      bench: 'tunnel-wan-fixed-window',
      metric: `one mux stream, window pinned at ${BASE_STREAM_WINDOW} bytes, same link, steady rate`,
      value: f.median,
      unit: 'MB/s',
      baseline: {
        name: 'plain TCP through the same emulated link',
        value: base.median,
        unit: 'MB/s',
      },
      ratio: fixedRatio,
      target: `about window/RTT = ${expected.toFixed(3)} of capacity (shows why auto-tuning is needed)`,
      pass: fixedRatio < 2 * expected,
      ratioToConfigured: f.median / CAPACITY,
      min: f.min,
      max: f.max,
      reps: fixed.length,
      ...common,
    });
  } finally {
    await proxy.stop();
    autoListener.destroy();
    fixedListener.destroy();
    sinkServer.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`tunnel-wan failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
