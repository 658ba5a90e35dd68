/**
 * The relay processes of the tunnel benchmarks. One JSON argument:
 *  - {"mode":"pipe","target":PORT}: TCP server; each connection is piped to a new TCP
 *    connection to 127.0.0.1:PORT (the baseline hop, no mux).
 *  - {"mode":"entry","tunnelUrl":URL}: TCP server; dials one tunnel to URL and pipes each
 *    connection through a new mux stream on it.
 *  - {"mode":"exit","target":PORT}: tunnel listener; each inbound mux stream is piped to a
 *    new TCP connection to 127.0.0.1:PORT.
 *  - {"mode":"echo"}: tunnel listener; a stream whose first byte is 'E' is echoed, one
 *    whose first byte is 'S' is read and discarded.
 * Prints one ready line {"port":N,"url":...}; exits when stdin closes or on SIGTERM.
 * BENCH_MUX='{"dataFrameSize":65536}' (JSON MuxConfig) overrides the tunnel's mux config,
 * for experiments; the benchmarks never set it. BENCH_DEBUG=1 makes the exit relay print
 * each stream's final receive window and the session's SRTT to stderr.
 */
import { once } from 'node:events';
import net from 'node:net';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import {
  type MuxConfig,
  type MuxStream,
  type Session,
  TunnelDialer,
  TunnelListener,
} from '../src/index.ts';
import { TOKEN } from './common.ts';

interface Config {
  mode: 'pipe' | 'entry' | 'exit' | 'echo';
  target?: number;
  tunnelUrl?: string;
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
process.on('SIGTERM', shutdown);

/** Both directions, each side's FIN forwarded; an error on either destroys both. */
function join(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
}

async function tcpServer(onConn: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    onConn(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

function connectTarget(): net.Socket {
  return net.connect({
    port: config.target!,
    host: '127.0.0.1',
    allowHalfOpen: true,
    noDelay: true,
  });
}

let lastSession: Session | undefined;

function muxOverride(): { mux?: Partial<MuxConfig> } {
  const raw = process.env.BENCH_MUX;
  return raw ? { mux: JSON.parse(raw) as Partial<MuxConfig> } : {};
}

async function listener(
  onStream: (s: MuxStream, session: Session) => void,
): Promise<{ port: number; url: string }> {
  const l = new TunnelListener({
    nodeId: 'bench-exit',
    token: TOKEN,
    host: '127.0.0.1',
    port: 0,
    ...muxOverride(),
  });
  l.on('tunnel', (t) => {
    lastSession = t.session;
    t.session.on('stream', (s: MuxStream) => onStream(s, t.session));
  });
  const addr = await l.listen();
  closers.push(() => l.destroy());
  return { port: addr.port, url: l.url };
}

/** This process's GC pauses from now until `stop()` (diagnostics of the receive side). */
function gcWatch(): {
  stop(): {
    full: number;
    minor: number;
    maxMs: number;
    totalMs: number;
    seconds: number;
  };
} {
  const t0 = performance.now();
  const g = { full: 0, minor: 0, maxMs: 0, totalMs: 0, seconds: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      g.maxMs = Math.max(g.maxMs, e.duration);
      g.totalMs += e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) g.full++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) g.minor++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      obs.disconnect();
      g.seconds = (performance.now() - t0) / 1000;
      return g;
    },
  };
}

function echoOrSink(s: MuxStream, session: Session): void {
  s.on('error', () => {});
  s.once('readable', () => {
    const head = s.read(1) as Buffer | null;
    if (head === null) return;
    if (head[0] === 0x45) s.pipe(s);
    else {
      const gc = gcWatch();
      s.on('data', () => {});
      s.on('end', () => {
        const g = gc.stop();
        // Diagnostics for the head-of-line bench: how far the bulk window grew, and why
        // (this stream's own session: the bench uses two tunnels).
        const rtt = session.rttStats;
        process.stderr.write(
          `  [echo child] bulk stream done: window ${s.receiveWindow} B, srtt ${rtt.srttMs?.toFixed(3)} ms, min ${rtt.minMs?.toFixed(3)} ms, min of last 10 s ${rtt.recentMinMs?.toFixed(3)} ms, samples ${rtt.samples}; GC ${g.full} full, ${g.minor} scavenges in ${g.seconds.toFixed(1)} s, max ${g.maxMs.toFixed(1)} ms, total ${g.totalMs.toFixed(0)} ms\n`,
        );
        s.end();
      });
    }
  });
}

async function main(): Promise<Record<string, unknown>> {
  switch (config.mode) {
    case 'pipe':
      return { port: await tcpServer((c) => join(c, connectTarget())) };
    case 'exit':
      return listener((s) => {
        if (process.env.BENCH_DEBUG) {
          s.once('end', () => {
            const rtt = lastSession?.rttStats;
            process.stderr.write(
              `  [exit child] stream done: window ${s.receiveWindow} B, srtt ${rtt?.srttMs?.toFixed(3)} ms, samples ${rtt?.samples}\n`,
            );
          });
        }
        join(s, connectTarget());
      });
    case 'echo':
      return listener(echoOrSink);
    case 'entry': {
      const dialer = new TunnelDialer({
        nodeId: 'bench-entry',
        token: TOKEN,
        ...muxOverride(),
      });
      const tunnel = await dialer.dial(config.tunnelUrl!);
      closers.push(() => tunnel.destroy());
      const port = await tcpServer((c) => join(c, tunnel.session.open()));
      return { port };
    }
  }
}

main().then(
  (ready) => process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`),
  (err: unknown) => {
    process.stderr.write(`tunnel-child failed: ${String(err)}\n`);
    process.exit(1);
  },
);
