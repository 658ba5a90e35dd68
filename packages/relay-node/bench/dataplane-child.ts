/**
 * The processes of the data-plane benchmarks (dataplane-*.bench.ts). One JSON argument:
 *  - {"mode":"origin"}: node:http origin. `GET /small` answers 200 with a 64-byte body;
 *    `GET /big?bytes=N` streams N bytes (64 KiB writes, backpressure honoured).
 *  - {"mode":"node","id":ID,"originPort":P,"listen":bool,"http":bool,"dial":{PEER:URL},
 *    "path":[ID,...]}: one relay node's data plane (DataPlane: entry, relay, exit) with a
 *    real tunnel listener and real tunnels dialed to the peers in `dial`. The origin
 *    `bench` (host `bench.local`, upstream http://127.0.0.1:P) is declared; `path`, when
 *    given, is this entry's only route to it. No coordinator: routes are static so the
 *    two-hop path can be forced (on loopback the coordinator would always pick one hop).
 *  - {"mode":"pipe","target":P}: plain socket pipe (TCP server, each connection piped to a
 *    new connection to 127.0.0.1:P), the baseline hop.
 *  - {"mode":"load","url":U,"workers":N,"durationMs":D}: N keep-alive clients (one undici
 *    Client each) doing sequential GET /small on U for D ms; the ready line comes at the
 *    end and carries the result (requests, errors, latency).
 * Prints one ready line {"ready":true,...}; exits when stdin closes or on SIGTERM.
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import {
  DataPlane,
  type HopStream,
  OriginTable,
  RouteTable,
  type Tunnel,
  TunnelDialer,
  TunnelListener,
} from '@relaymesh/relay-node';
import { DirectDialer } from '@relaymesh/shared';
import { TOKEN } from './common.ts';
import { runLoad } from './dataplane-common.ts';

interface Config {
  mode: 'origin' | 'node' | 'pipe' | 'load';
  url?: string;
  workers?: number;
  durationMs?: number;
  id?: string;
  originPort?: number;
  listen?: boolean;
  http?: boolean;
  dial?: Record<string, string>;
  path?: string[];
  target?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config;
const closers: Array<() => void> = [];

function shutdown(): void {
  for (const c of closers) c();
  process.exit(0);
}
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
// A "heap" line on stdin: full GC (when run with --expose-gc), then one JSON line with the
// live heap and RSS (the clients bench tells retained memory from not-yet-collected garbage).
process.stdin.on('data', (d: Buffer) => {
  if (!d.toString().includes('heap')) return;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ heap: { usedMiB: m.heapUsed / 2 ** 20, rssMiB: m.rss / 2 ** 20, gc: gc !== undefined } })}\n`,
  );
});
process.on('SIGTERM', shutdown);

const SMALL_BODY = Buffer.alloc(64, 0x61);
const BIG_CHUNK = Buffer.alloc(64 * 1024, 0x62);

async function listenTcp(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1', 1024);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function origin(): Promise<Record<string, unknown>> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/big')) {
      const n = Number(new URL(req.url, 'http://x').searchParams.get('bytes') ?? 0);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      let left = n;
      const pump = () => {
        while (left > 0) {
          const c = left >= BIG_CHUNK.length ? BIG_CHUNK : BIG_CHUNK.subarray(0, left);
          left -= c.length;
          if (!res.write(c)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL_BODY.length });
    res.end(SMALL_BODY);
  });
  server.keepAliveTimeout = 60_000;
  server.maxRequestsPerSocket = 0;
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: await listenTcp(server) };
}

async function pipe(): Promise<Record<string, unknown>> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (a) => {
    const b = net.connect({ port: config.target!, host: '127.0.0.1', allowHalfOpen: true });
    b.setNoDelay(true);
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        a.destroy();
        b.destroy();
      });
    }
    a.pipe(b);
    b.pipe(a);
  });
  closers.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: await listenTcp(server) };
}

/**
 * DP_STREAM_WINDOW=BYTES: initial per-stream receive window of the tunnels (diagnostics:
 * tells a window-limited transfer from a CPU-limited one). Default: the mux default.
 */
const mux = process.env.DP_STREAM_WINDOW
  ? { mux: { initialStreamWindow: Number(process.env.DP_STREAM_WINDOW) } }
  : {};

/**
 * DP_SEND_TIMEOUT_MS=MS: the entry's send timeout (diagnostics: 0 measures the body relay
 * without its stall timer). Default: the entry default.
 */
const entryOptions = process.env.DP_SEND_TIMEOUT_MS
  ? { entry: { sendTimeoutMs: Number(process.env.DP_SEND_TIMEOUT_MS) } }
  : {};

async function node(): Promise<Record<string, unknown>> {
  const id = config.id!;
  const catalog = new OriginTable([
    { name: 'bench', hosts: ['bench.local'], upstreams: [`http://127.0.0.1:${config.originPort}`] },
  ]);
  const routes = new RouteTable({ nodeId: id });
  if (config.path) {
    routes.update([{ from: id, origin: 'bench', path: config.path, rttMs: 1, alternates: [] }]);
  }
  const dialed = new Map<string, Tunnel>();
  const plane = new DataPlane({
    nodeId: id,
    catalog,
    routes,
    opener: {
      open(peer) {
        const t = dialed.get(peer);
        if (!t) throw new Error(`no tunnel to ${peer}`);
        return t.session.open() as HopStream;
      },
    },
    dialer: new DirectDialer(),
    ...(config.http ? { httpListen: { host: '127.0.0.1', port: 0 } } : {}),
    ...entryOptions,
  });
  closers.push(() => void plane.destroy());
  let tunnelUrl: string | undefined;
  if (config.listen) {
    const l = new TunnelListener({ nodeId: id, token: TOKEN, host: '127.0.0.1', port: 0, ...mux });
    l.on('tunnel', (t: Tunnel) => {
      t.session.on('stream', (s) => plane.handleStream(s as HopStream));
    });
    await l.listen();
    tunnelUrl = l.url;
    closers.push(() => l.destroy());
  }
  const dialer = new TunnelDialer({ nodeId: id, token: TOKEN, ...mux });
  for (const [peer, url] of Object.entries(config.dial ?? {})) {
    const t = await dialer.dial(url);
    t.session.on('stream', (s) => plane.handleStream(s as HopStream));
    dialed.set(peer, t);
    closers.push(() => t.destroy());
  }
  const addrs = await plane.start();
  return { tunnelUrl, httpPort: addrs.http?.port };
}

async function main(): Promise<Record<string, unknown>> {
  switch (config.mode) {
    case 'origin':
      return origin();
    case 'pipe':
      return pipe();
    case 'node':
      return node();
    case 'load':
      return {
        ...(await runLoad({
          url: config.url!,
          path: '/small',
          workers: config.workers!,
          durationMs: config.durationMs!,
          maxRequests: Number.MAX_SAFE_INTEGER,
          clientPerWorker: true,
        })),
      };
  }
}

/** DP_PROFILE=delayMs,durationMs: a CPU profile of this process to DP_PROFILE_DIR (diagnostics). */
async function profileLater(): Promise<void> {
  const spec = process.env.DP_PROFILE;
  if (!spec) return;
  const [delay, duration] = spec.split(',').map(Number) as [number, number];
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const s = new Session();
  s.connect();
  await new Promise((r) => setTimeout(r, delay));
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 100 });
  await s.post('Profiler.start');
  await new Promise((r) => setTimeout(r, duration));
  const { profile } = await s.post('Profiler.stop');
  const dir = process.env.DP_PROFILE_DIR ?? '/tmp';
  const name = `${dir}/dp-${config.mode}-${config.id ?? ''}-${process.pid}.cpuprofile`;
  writeFileSync(name, JSON.stringify(profile));
}

main().then(
  (ready) => {
    process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, ...ready })}\n`);
    profileLater().catch((e: unknown) => process.stderr.write(`profile failed: ${String(e)}\n`));
  },
  (err: unknown) => {
    process.stderr.write(
      `dataplane-child failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  },
);
